// Runs Malloy queries against a PostgreSQL server with Malloy's own compiler and PostgreSQL
// connection (npm @malloydata/malloy, @malloydata/db-postgres), as a BI user would.
// Usage: node malloy_run.js HOST PORT USER DATABASE < {"name": "malloy source", ...}
// Prints {"name": {"rows": [...], "sql": "..."} or {"error": "..."}, ...} as JSON.
const fs = require('fs');
const {PostgresConnection} = require('@malloydata/db-postgres');
const {SingleConnectionRuntime} = require('@malloydata/malloy');

async function main() {
  const [host, port, user, database] = process.argv.slice(2);
  const queries = JSON.parse(fs.readFileSync(0, 'utf8'));
  const connection = new PostgresConnection({
    name: 'postgres', host, port: Number(port), username: user, databaseName: database,
  });
  const runtime = new SingleConnectionRuntime({connection});
  const out = {};
  for (const [name, source] of Object.entries(queries)) {
    try {
      const query = runtime.loadQuery(source);
      const sql = await query.getSQL();
      const result = await query.run();
      out[name] = {rows: result.data.toObject(), sql};
    } catch (e) {
      out[name] = {error: String(e && e.message ? e.message : e)};
    }
  }
  await connection.close();
  process.stdout.write(JSON.stringify(out));
}

main().catch(e => { console.error(e); process.exit(1); });
