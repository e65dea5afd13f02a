// Proves the guarded SQL tools (issue 12, "Proofs") with the official TypeScript MCP client on
// the local backend's real PostgreSQL, over stdio or Streamable HTTP.
//
// Usage:
//   node sql.mjs stdio BINARY DATA_DIR          (spawns `BINARY serve --data-dir DATA_DIR`)
//   NEONGUARD_E2E_TOKEN=ngt_… node sql.mjs streamable BASE_URL
//
// The server's settings (a tier with small sql limits, local.postgres=on) come from the
// environment the Go test sets (NEONGUARD_CONFIG, …); the bearer token from the environment,
// never argv. The test (cmd/neonguard/sql_e2e_test.go) asserts on what this prints: one JSON
// object
//   {transport, tools: [...], database_id, cases: {NAME: {...facts, calls: [...]}}}
// where each case records facts (row counts, codes, messages) rather than verdicts, and every
// call it made: {name, isError, code, message, structured}. A case that throws records
// {error} and the next case still runs. The client validates every structuredContent against
// the tool's outputSchema and throws on a mismatch, so a call that comes back was accepted by it.
//
// To add a proof: write `async function NAME(ctx)` returning its facts, list it in `cases`
// below, and assert on out.cases.NAME in the Go test.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const [kind, ...rest] = process.argv.slice(2);
if (!((kind === "stdio" && rest.length === 2) || (kind === "streamable" && rest.length === 1))) {
  process.stderr.write("usage: node sql.mjs stdio BINARY DATA_DIR | node sql.mjs streamable BASE_URL\n");
  process.exit(2);
}
// newTransport connects a new client: over stdio a new server process on the same data dir
// (only one may run at a time: the data dir is locked), over HTTP a new session.
function newTransport({ serveArgs = [], token = process.env.NEONGUARD_E2E_TOKEN ?? "" } = {}) {
  if (kind === "stdio") {
    return new StdioClientTransport({
      command: rest[0],
      args: ["serve", "--data-dir", rest[1], ...serveArgs],
      env: { ...process.env },
      stderr: "ignore",
    });
  }
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  return new StreamableHTTPClientTransport(new URL("/mcp", rest[0]), { requestInit: { headers } });
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n", () => process.exit(0));
}

const client = new Client({ name: `neonguard-e2e-ts-sql-${kind}`, version: "1.0.0" });
await client.connect(newTransport());
const out = { transport: kind, tools: [], database_id: "", cases: {} };
out.tools = (await client.listTools()).tools.map((t) => t.name);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// call records every call in the current case's log and returns {ok, code, message, s}.
function caller(log, c = client) {
  return async (name, args) => {
    let rec;
    try {
      const res = await c.callTool({ name, arguments: args }, undefined, { timeout: 120_000 });
      rec = { name, isError: !!res.isError, code: "", message: "", structured: res.structuredContent ?? null };
      if (res.isError) {
        const err = JSON.parse(res.content[0].text).error;
        rec.code = err.code;
        rec.message = err.message;
      }
    } catch (e) {
      rec = { name, isError: true, code: "CLIENT_REJECTED", message: String(e), structured: null };
    }
    log.push(rec);
    return { ok: !rec.isError, code: rec.code, message: rec.message, s: rec.structured };
  };
}

// ctx.sql runs run_sql on the case's database (read-only unless read_only:false is given).
function caseContext(log, id) {
  const call = caller(log);
  const sql = (text, extra = {}) => call("run_sql", { database_id: id, sql: text, ...extra });
  // scalar is the first value of the first row of a read, or the error code.
  const scalar = async (text) => {
    const r = await sql(text);
    return r.ok ? r.s.rows[0]?.[0] ?? null : `error:${r.code}`;
  };
  return { id, call, sql, scalar };
}

// a. A table made by apply_migration, rows inserted by run_sql, then undo_migration: the
// table and its rows are gone.
async function migrationUndo({ call, sql, scalar, id }) {
  const f = {};
  await sleep(1100); // the restore point must be after the branch's start (whole seconds)
  const m = await call("apply_migration", {
    database_id: id,
    name: "0001_items",
    sql: "CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL)",
  });
  f.applied = m.s?.applied ?? null;
  f.version = m.s?.version ?? null;
  f.migration_restore_point = m.s?.restore_point ?? null;
  const ins = await sql("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 3) g", { read_only: false });
  f.inserted = ins.s?.row_count ?? `error:${ins.code}`;
  f.insert_restore_point = ins.s?.restore_point ?? null;
  f.rows_before = await scalar("SELECT count(*) FROM items");
  f.table_before = await scalar("SELECT to_regclass('public.items')::text");
  const u = await call("undo_migration", { database_id: id, version: f.version ?? 0 });
  f.undo_ok = u.ok;
  f.undone = u.s?.undone ?? null;
  f.table_after = await scalar("SELECT to_regclass('public.items')::text");
  f.select_after = await scalar("SELECT count(*) FROM items"); // error:INVALID_ARGUMENT (42P01)
  const l = await call("list_migrations", { database_id: id });
  f.ledger_after = l.s?.migrations?.map((x) => x.name) ?? null;
  return f;
}

// b. Destructive statements on main: refused without confirm (nothing changes); with
// confirm they run and return a restore point that undo_to_time takes the data back to.
async function destructiveConfirm({ call, sql, scalar, id }) {
  const f = {};
  const setup = await sql("CREATE TABLE keep (n int PRIMARY KEY); INSERT INTO keep SELECT generate_series(1, 5)", {
    read_only: false,
  });
  f.setup_ok = setup.ok;
  await sleep(1100);
  const del = await sql("DELETE FROM keep", { read_only: false });
  f.delete_code = del.code;
  f.delete_message = del.message;
  const drop = await sql("DROP TABLE keep", { read_only: false });
  f.drop_code = drop.code;
  f.drop_message = drop.message;
  f.rows_after_refusals = await scalar("SELECT count(*) FROM keep");
  const ok = await sql("DROP TABLE keep", { read_only: false, confirm: true });
  f.confirmed_ok = ok.ok;
  f.restore_point = ok.s?.restore_point ?? null;
  f.table_after_drop = await scalar("SELECT to_regclass('public.keep')::text");
  const undo = await call("undo_to_time", { database_id: id, timestamp: f.restore_point?.time ?? "" });
  f.undo_ok = undo.ok;
  f.rows_after_undo = await scalar("SELECT count(*) FROM keep");
  f.sum_after_undo = await scalar("SELECT sum(n) FROM keep");
  return f;
}

// c. The tier's max_rows cuts the rows returned (not the count).
async function maxRows({ sql }) {
  const r = await sql("SELECT generate_series(1, 50) AS n");
  return {
    ok: r.ok,
    code: r.code,
    returned: r.s?.rows?.length ?? null,
    row_count: r.s?.row_count ?? null,
    truncated: r.s?.truncated ?? null,
  };
}

// d. The tier's statement_timeout cancels a long statement.
async function statementTimeout({ sql }) {
  const start = Date.now();
  const r = await sql("SELECT pg_sleep(30)");
  return { code: r.code, message: r.message, elapsed_ms: Date.now() - start };
}

// e. A syntax error: INVALID_ARGUMENT with PostgreSQL's message and position, on a read (the
// server's parser) and on a write (neonguard parses writes first).
async function syntaxError({ sql }) {
  const read = await sql("SELECT 1 FROM FROM");
  const write = await sql("INSERT INTO nowhere VALUES (1) WHERE", { read_only: false });
  return { read_code: read.code, read_message: read.message, write_code: write.code, write_message: write.message };
}

// f. Elicitation: a client that declares the capability is asked instead of refused; the
// user's decline runs nothing, their accept runs the statement. (The main client declares no
// elicitation: case b is the refusal.) Over stdio the main client's server is stopped first,
// so this case runs last.
async function elicitation({ id }) {
  const f = { asked: [] };
  let answer = "decline";
  const asker = new Client({ name: `neonguard-e2e-ts-elicit-${kind}`, version: "1.0.0" }, { capabilities: { elicitation: {} } });
  asker.setRequestHandler(ElicitRequestSchema, async (req) => {
    f.asked.push(req.params.message);
    return answer === "accept" ? { action: "accept", content: {} } : { action: answer };
  });
  await releaseMainServer();
  await asker.connect(newTransport());
  const log = [];
  const run = async (text) => {
    const r = await asker.callTool({ name: "run_sql", arguments: { database_id: id, sql: text, read_only: false } }, undefined, { timeout: 120_000 });
    const rec = { ok: !r.isError, code: "", message: "", s: r.structuredContent ?? null };
    if (r.isError) Object.assign(rec, JSON.parse(r.content[0].text).error);
    log.push({ text, ...rec });
    return rec;
  };
  const count = async () => (await asker.callTool({ name: "run_sql", arguments: { database_id: id, sql: "SELECT count(*) FROM asked" } })).structuredContent?.rows?.[0]?.[0] ?? null;
  f.setup_ok = (await run("CREATE TABLE asked (n int); INSERT INTO asked SELECT generate_series(1, 3)")).ok;
  const declined = await run("DELETE FROM asked");
  f.declined_code = declined.code;
  f.declined_message = declined.message;
  f.rows_after_decline = await count();
  answer = "accept";
  const accepted = await run("DELETE FROM asked");
  f.accepted_ok = accepted.ok;
  f.accepted_restore_point = accepted.s?.restore_point ?? null;
  f.rows_after_accept = await count();
  f.log = log;
  await asker.close();
  return f;
}

// releaseMainServer stops the main client's server over stdio, so that a case can start its
// own on the same data dir; over HTTP every client is a session of the one server.
let mainReleased = false;
async function releaseMainServer() {
  if (kind === "stdio" && !mainReleased) {
    mainReleased = true;
    await client.close();
  }
}

// g. Read-only access: a `read` token over HTTP (NEONGUARD_E2E_READ_TOKEN), `serve
// --read-only` over stdio. It lists only tools annotated read-only, reads, and every write is
// FORBIDDEN: a write tool, a migration, and run_sql {read_only:false}.
async function readAccess({ id }) {
  const f = {};
  await releaseMainServer();
  const reader = new Client({ name: `neonguard-e2e-ts-read-${kind}`, version: "1.0.0" });
  await reader.connect(newTransport({ serveArgs: ["--read-only"], token: process.env.NEONGUARD_E2E_READ_TOKEN ?? "" }));
  const tools = (await reader.listTools()).tools;
  f.tools = tools.map((t) => t.name);
  f.not_read_only = tools.filter((t) => t.annotations?.readOnlyHint !== true).map((t) => t.name);
  const log = [];
  const call = caller(log, reader);
  const read = await call("run_sql", { database_id: id, sql: "SELECT count(*) FROM keep" });
  f.read_ok = read.ok;
  f.read_rows = read.s?.rows?.[0]?.[0] ?? null;
  f.write_sql_code = (await call("run_sql", { database_id: id, sql: "INSERT INTO keep VALUES (100)", read_only: false })).code;
  f.migration_code = (await call("apply_migration", { database_id: id, name: "9_nope", sql: "CREATE TABLE nope (n int)" })).code;
  f.checkpoint_code = (await call("checkpoint", { database_id: id, name: "nope" })).code;
  f.rows_after = (await call("run_sql", { database_id: id, sql: "SELECT count(*) FROM keep" })).s?.rows?.[0]?.[0] ?? null;
  f.nope_table = (await call("run_sql", { database_id: id, sql: "SELECT to_regclass('public.nope')::text" })).s?.rows?.[0]?.[0] ?? null;
  await reader.close();
  return f;
}

// h. apply_migration {dry_run:true} rehearses on a temporary branch: it reports the schema
// changes and leaves main as it was (describe_schema and the ledger before and after), and no
// temporary branch is left.
async function dryRun({ call, id }) {
  const f = {};
  const schema = async () => JSON.stringify((await call("describe_schema", { database_id: id })).s ?? null);
  const ledger = async () => JSON.stringify((await call("list_migrations", { database_id: id })).s?.migrations ?? null);
  const branches = async () => (await call("list_branches", { database_id: id })).s?.branches?.length ?? null;
  const [schemaBefore, ledgerBefore, branchesBefore] = [await schema(), await ledger(), await branches()];
  const d = await call("apply_migration", {
    database_id: id,
    name: "0002_rehearsed",
    sql: "CREATE TABLE rehearsed (id int PRIMARY KEY); ALTER TABLE keep ADD COLUMN note text",
    dry_run: true,
  });
  f.ok = d.ok;
  f.code = d.code;
  f.dry_run = d.s?.dry_run ?? null;
  f.schema_changes = d.s?.schema_changes ?? null;
  const bad = await call("apply_migration", { database_id: id, name: "0003_bad", sql: "ALTER TABLE missing ADD COLUMN x int", dry_run: true });
  f.bad_code = bad.code;
  f.bad_message = bad.message;
  f.schema_unchanged = (await schema()) === schemaBefore;
  f.ledger_unchanged = (await ledger()) === ledgerBefore;
  f.branches_before = branchesBefore;
  f.branches_after = await branches();
  return f;
}

const cases = [
  ["migration_undo", migrationUndo],
  ["destructive_confirm", destructiveConfirm],
  ["max_rows", maxRows],
  ["statement_timeout", statementTimeout],
  ["syntax_error", syntaxError],
  ["dry_run", dryRun],
  // The last ones: over stdio they replace the main client's server with their own.
  ["elicitation", elicitation],
  ["read_access", readAccess],
];

const setupLog = [];
const db = await caller(setupLog)("create_database", { name: `ts-sql-${kind}` });
out.database_id = db.s?.database_id ?? "";
if (!db.ok) {
  out.setup = setupLog;
} else {
  const only = (process.env.NEONGUARD_E2E_CASES ?? "").split(",").filter(Boolean);
  for (const [name, run] of cases) {
    if (only.length && !only.includes(name)) continue;
    const log = [];
    try {
      out.cases[name] = await run(caseContext(log, out.database_id));
    } catch (e) {
      out.cases[name] = { error: String(e?.stack ?? e) };
    }
    out.cases[name].calls = log;
  }
}

await releaseMainServer();
if (kind !== "stdio") await client.close();
emit(out);
