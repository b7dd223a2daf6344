// A JDBC client as BI tools use it: each statement prepared once and executed several
// times (server-side prepared after prepareThreshold executions), parameters set as strings.
// Usage: java -cp postgresql.jar BiClient.java <jdbc url> <user> <statements file> <runs>
// The file holds one statement a line, its parameters after tabs.  Prints one line per
// statement: OK <rows> <column type names> <server-prepared> | ERR <sqlstate> <message>.
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.util.Properties;

public class BiClient {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("prepareThreshold", "5");
        int runs = Integer.parseInt(args[3]);
        try (Connection conn = DriverManager.getConnection(args[0], props)) {
            conn.setAutoCommit(true);
            for (String line : Files.readAllLines(Path.of(args[2]))) {
                String[] parts = line.split("\t", -1);
                try (PreparedStatement ps = conn.prepareStatement(parts[0])) {
                    String result = "";
                    for (int run = 0; run < runs; run++) {
                        for (int i = 1; i < parts.length; i++) {
                            ps.setString(i, parts[i]);
                        }
                        try (ResultSet rs = ps.executeQuery()) {
                            ResultSetMetaData md = rs.getMetaData();
                            int rows = 0;
                            while (rs.next()) {
                                rows++;
                            }
                            StringBuilder types = new StringBuilder();
                            for (int i = 1; i <= md.getColumnCount(); i++) {
                                types.append(i > 1 ? "," : "").append(md.getColumnTypeName(i));
                            }
                            result = "OK " + rows + " " + types;
                        }
                    }
                    boolean server = ps.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare();
                    System.out.println(result + " " + server);
                } catch (SQLException e) {
                    System.out.println("ERR " + e.getSQLState() + " " + String.valueOf(e.getMessage()).replace('\n', ' '));
                }
            }
        }
    }
}
