// Runs @neondatabase/serverless (neon(), HTTP) against `neonguard local`'s SQL over HTTP with
// the one line of configuration the README documents. Env: DATABASE_URL (an endpoint's
// connection string from the emulator), SQL_URL (https://127.0.0.1:PORT/sql) and
// NODE_EXTRA_CA_CERTS (the emulator's certificate). Prints "ok <case>"; exits 1 on failure.
import { neon, neonConfig, NeonDbError } from "@neondatabase/serverless";

neonConfig.fetchEndpoint = () => process.env.SQL_URL;

function fail(msg) {
  console.error("FAIL " + msg);
  process.exit(1);
}
// An unexpected error: one line, with the API's answer when there is one (not axios's dump).
process.on("uncaughtException", (e) => {
  const res = e?.response ? ` -> ${e.response.status} ${JSON.stringify(e.response.data)} (${e.config?.method} ${e.config?.url})` : "";
  fail(`${e?.message ?? e}${res}`);
});
function ok(name) {
  console.log("ok " + name);
}
function eq(got, want, what) {
  if (JSON.stringify(got) !== JSON.stringify(want)) fail(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

const sql = neon(process.env.DATABASE_URL);

// Single queries: parameters, types, fields.
eq(await sql`SELECT ${7}::int AS n, ${"x"}::text AS t, ${null}::int AS z, ${true}::bool AS b, ${[1, 2]}::int[] AS a, ${{ k: "v" }}::jsonb AS j`,
  [{ n: 7, t: "x", z: null, b: true, a: [1, 2], j: { k: "v" } }], "typed select");
ok("single query (tagged template, parameters and types)");

await sql`CREATE TABLE compat_orders (id serial PRIMARY KEY, item text UNIQUE NOT NULL, qty int8 NOT NULL)`;
const ins = await sql.query("INSERT INTO compat_orders (item, qty) VALUES ($1, $2), ($3, $4) RETURNING id, item",
  ["apple", 3, "pear", 5], { fullResults: true });
eq([ins.command, ins.rowCount, ins.rows], ["INSERT", 2, [{ id: 1, item: "apple" }, { id: 2, item: "pear" }]], "insert");
eq(ins.fields.map((f) => [f.name, f.dataTypeID]), [["id", 23], ["item", 25]], "fields");
ok("single query (fullResults: command, rowCount, fields)");

const arr = await sql.query("SELECT item, qty FROM compat_orders ORDER BY id", [], { arrayMode: true });
eq(arr, [["apple", "3"], ["pear", "5"]], "array mode (int8 as a string, as pg parses it)");
ok("single query (arrayMode)");

// Transactions: all or nothing.
const [up, cnt] = await sql.transaction([
  sql`UPDATE compat_orders SET qty = qty + 1 WHERE item = 'apple'`,
  sql`SELECT count(*)::int AS n, sum(qty)::int AS total FROM compat_orders`,
]);
eq([up, cnt], [[], [{ n: 2, total: 9 }]], "transaction");
ok("transaction (commit)");

try {
  await sql.transaction([
    sql`INSERT INTO compat_orders (item, qty) VALUES ('plum', 1)`,
    sql`INSERT INTO compat_orders (item, qty) VALUES ('apple', 1)`,
  ], { isolationLevel: "Serializable" });
  fail("duplicate insert in a transaction succeeded");
} catch (e) {
  if (!(e instanceof NeonDbError) || e.code !== "23505" || e.constraint !== "compat_orders_item_key") fail(`transaction error: ${e} ${e.code}`);
}
eq(await sql`SELECT item FROM compat_orders ORDER BY id`, [{ item: "apple" }, { item: "pear" }], "rolled back");
ok("transaction (error rolls back, PostgreSQL's code and constraint)");

// Errors: PostgreSQL's code, message, position.
try {
  await sql`SELECT nope FROM compat_orders`;
  fail("a bad column succeeded");
} catch (e) {
  if (!(e instanceof NeonDbError)) fail(`not a NeonDbError: ${e}`);
  eq([e.code, e.message, e.position, e.severity], ["42703", 'column "nope" does not exist', "8", "ERROR"], "error fields");
}
ok("error (NeonDbError with code, message, position)");

// A wrong password is PostgreSQL's refusal, as on Neon.
const bad = new URL(process.env.DATABASE_URL);
bad.password = "wrong";
try {
  await neon(bad.toString())`SELECT 1`;
  fail("a wrong password connected");
} catch (e) {
  if (e.code !== "28P01") fail(`wrong password: ${e} ${e.code}`);
}
ok("error (wrong password: 28P01)");
