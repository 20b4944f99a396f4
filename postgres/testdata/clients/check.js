// Reads a schema drextract published with node-postgres (npm pg), as a Node dashboard
// would. Connection settings come from the PG* environment variables.
//
// Usage: NODE_PATH=…/node_modules PGHOST=… PGPORT=… PGUSER=… PGPASSWORD=… PGDATABASE=… node check.js SCHEMA
// Prints one JSON object on standard output (postgres/clients_test.go reads it).
const { Client } = require('pg');

async function main() {
  const schema = process.argv[2];
  const client = new Client();
  await client.connect();
  try {
    const byStatus = await client.query(
      `SELECT status, count(*)::int AS n FROM ${schema}.jobs WHERE NOT is_deleted GROUP BY status ORDER BY status`);
    const fresh = await client.query(
      `SELECT entity, last_ok_run_id::int AS run FROM ${schema}.freshness ORDER BY entity`);
    const comment = await client.query(
      `SELECT obj_description($1::regclass, 'pg_class') AS c`, [`${schema}.stream_health`]);
    const out = {
      jobs_by_status: Object.fromEntries(byStatus.rows.map((r) => [r.status, r.n])),
      freshness: Object.fromEntries(fresh.rows.map((r) => [r.entity, r.run])),
      stream_health_comment: comment.rows[0].c,
    };
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    await client.end();
  }
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack || err) + '\n');
  process.exit(1);
});
