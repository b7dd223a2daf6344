// JDBC's DatabaseMetaData.getColumns, as BI tools and drivers read a table's columns.
// Usage: java -cp postgresql.jar BiColumns.java <jdbc url> <user> <schema> <table>
// Prints one line per column: <name> <type name> <remarks or ->.
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.util.Properties;

public class BiColumns {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        try (Connection conn = DriverManager.getConnection(args[0], props)) {
            DatabaseMetaData md = conn.getMetaData();
            try (ResultSet rs = md.getColumns(null, args[2], args[3], "%")) {
                while (rs.next()) {
                    String remarks = rs.getString("REMARKS");
                    System.out.println(rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME") + " "
                                       + (remarks == null ? "-" : remarks.replace(' ', '_')));
                }
            }
        }
    }
}
