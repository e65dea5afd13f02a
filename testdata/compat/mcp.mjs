// Runs Neon's own MCP server (@neondatabase/mcp-server-neon, stdio, NEON_API_HOST pointed at
// `neonguard local`) with the official MCP client and checks every tool call named below.
// Run by cmd/neonguard/compat_test.go with Node 22 (the server's minimum). Env:
//   NEON_API_HOST      the emulator's base URL (…/api/v2)
//   PERSONAL_KEY       the personal API key; ORG_KEY a free org's key; ORG_ID its org id
//   SQL=1              the SQL tools are arranged (endpoint host localhost, SQL over HTTP on
//                      127.0.0.1:443, NODE_EXTRA_CA_CERTS set): check them too
// Prints "ok <case>" per passed case; exits 1 on the first failure.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const entry = path.join(here, "node_modules/@neondatabase/mcp-server-neon/dist/index.js");
const env = process.env;

// The servers started, killed on a failure (Neon's server does not exit when its stdin closes).
const servers = [];
function fail(msg) {
  console.error("FAIL " + msg);
  for (const tr of servers) {
    try {
      if (tr.pid) process.kill(tr.pid, "SIGKILL");
    } catch {}
  }
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
// Every tool of Neon's server takes its arguments under "params".
function text(res) {
  return (res.content ?? []).map((c) => c.text ?? "").join("\n");
}

async function start(key) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [entry, "start", key, "no-analytics"],
    env: { ...env },
    stderr: "pipe",
  });
  servers.push(transport);
  let stderr = "";
  transport.stderr?.on("data", (d) => (stderr += d));
  const client = new Client({ name: "neonguard-compat", version: "1.0.0" });
  try {
    await client.connect(transport);
  } catch (e) {
    fail(`the server did not start: ${e}\n${stderr.slice(-2000)}`);
  }
  return client;
}

async function call(client, name, args, { expectError = false } = {}) {
  const res = await client.callTool({ name, arguments: { params: args } });
  const t = text(res);
  if (!!res.isError !== expectError) {
    fail(`${name} ${JSON.stringify(args)}: isError=${!!res.isError}: ${t}`);
  }
  return t;
}

// callWhenUnlocked calls a tool that changes a project, again while Neon answers 423 (the
// project's operations still run; Neon's docs ask to wait for them). Returns the text and
// whether a 423 came first.
async function callWhenUnlocked(client, name, args) {
  let res = await client.callTool({ name, arguments: { params: args } });
  let locked = false;
  for (let i = 0; i < 200 && res.isError && text(res).includes("conflicting operations"); i++) {
    locked = true;
    await new Promise((r) => setTimeout(r, 100));
    res = await client.callTool({ name, arguments: { params: args } });
  }
  if (res.isError) fail(`${name} ${JSON.stringify(args)}: ${text(res)}`);
  return [text(res), locked];
}

// waitOps waits until the project's operations are finished (Neon's docs ask for it before
// the next change; the tools that make two changes in a row do not retry a 423).
async function waitOps(projectId) {
  for (let i = 0; i < 600; i++) {
    const { operations } = await api("GET", `/projects/${projectId}/operations?limit=1000`);
    if (operations.every((o) => o.status === "finished" || o.status === "skipped")) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  fail(`operations of ${projectId} did not finish`);
}

function match(t, re, what) {
  const m = t.match(re);
  if (!m) fail(`${what}: no ${re} in:\n${t}`);
  return m;
}

// --- Personal key: the user, member of two orgs (the issue: the server exited at start).
const personal = await start(env.PERSONAL_KEY);
ok("start (personal key: GET /auth, GET /users/me)");
const tools = (await personal.listTools()).tools.map((t) => t.name);
for (const want of ["list_projects", "create_project", "create_branch", "run_sql", "describe_branch"]) {
  if (!tools.includes(want)) fail(`tools/list lacks ${want}`);
}
ok("tools/list");

let t = await call(personal, "list_organizations", {});
if (!t.includes(env.ORG_ID)) fail(`list_organizations lacks ${env.ORG_ID}: ${t}`);
ok("list_organizations");

// Two orgs and no org_id: Neon's server asks which one (what it does on Neon too).
t = await call(personal, "list_projects", {}, { expectError: true });
if (!t.includes("Multiple organizations found")) fail(`list_projects without org_id: ${t}`);
ok("list_projects without org_id (two orgs: asks for one)");

t = await call(personal, "list_shared_projects", {});
ok("list_shared_projects");

t = await call(personal, "create_project", { name: "compat-mcp", org_id: env.ORG_ID });
const projectId = match(t, /The project_id is "([^"]+)"/, "create_project")[1];
match(t, /URI: postgresql:\/\/\S+/, "create_project connection string");
ok("create_project");

// Right after create_project: the project's create_timeline and start_compute are still
// running, and Neon answers 423 to a change then (the MCP server does not retry). Wait for
// them, as Neon's docs ask, then the same call succeeds.
const [branchText, locked] = await callWhenUnlocked(personal, "create_branch", { projectId, branchName: "compat-dev" });
ok(locked ? "create_branch right after create_project (423 while its operations run, then 201)"
  : "create_branch right after create_project (201)");
const branchId = match(branchText, /Branch ID: (br-[a-z0-9-]+)/, "create_branch")[1];

t = await call(personal, "list_projects", { org_id: env.ORG_ID });
if (!t.includes(projectId)) fail(`list_projects lacks ${projectId}: ${t}`);
ok("list_projects with org_id");

t = await call(personal, "describe_project", { projectId });
if (!t.includes(branchId)) fail(`describe_project lacks ${branchId}`);
ok("describe_project");

t = await call(personal, "get_connection_string", { projectId, branchId });
const branchURI = match(t, /URI: (postgresql:\/\/\S+)/, "get_connection_string")[1];
ok("get_connection_string");

t = await call(personal, "list_branch_computes", { projectId });
if ((t.match(/"compute_id": "ep-/g) ?? []).length !== 2) fail(`list_branch_computes (the project: main's and the branch's): ${t}`);
const branchCompute = match(await call(personal, "list_branch_computes", { projectId, branchId }), /"compute_id": "(ep-[a-z0-9-]+)"/, "list_branch_computes with branchId")[1];
t = await call(personal, "list_branch_computes", { projectId, branchId });
if ((t.match(/"compute_id"/g) ?? []).length !== 1) fail(`list_branch_computes with branchId (its compute only): ${t}`);
ok("list_branch_computes (the project's; one branch's)");

t = await call(personal, "get_connection_string", { projectId, branchId, computeId: branchCompute, databaseName: "neondb", roleName: "neondb_owner" });
// The branch's one compute, its owner and database: the branch's default connection string.
if (match(t, /URI: (postgresql:\/\/neondb_owner:[^@]+@\S+\/neondb\S*)/, "get_connection_string with computeId, databaseName, roleName")[1] !== branchURI) {
  fail(`get_connection_string with computeId ${branchCompute}: ${t}\nwant ${branchURI}`);
}
ok("get_connection_string (computeId, databaseName, roleName)");

t = await call(personal, "list_projects", { org_id: env.ORG_ID, search: "compat-mcp" });
if (!t.includes(projectId)) fail(`list_projects with search lacks ${projectId}: ${t}`);
t = await call(personal, "list_projects", { org_id: env.ORG_ID, search: "no-such-project-name" });
if (t.includes(projectId)) fail(`list_projects with a search matching nothing: ${t}`);
ok("list_projects (search)");

if (env.SQL === "1") {
  t = await call(personal, "run_sql", { projectId, branchId, sql: "CREATE TABLE compat_items (id int PRIMARY KEY, name text NOT NULL)" });
  ok("run_sql (CREATE TABLE)");
  t = await call(personal, "run_sql_transaction", {
    projectId, branchId,
    sqlStatements: ["INSERT INTO compat_items VALUES (1, 'one'), (2, 'two')", "SELECT count(*)::int AS n FROM compat_items"],
  });
  if (!/"n":\s*2/.test(t)) fail(`run_sql_transaction: ${t}`);
  ok("run_sql_transaction");
  t = await call(personal, "run_sql", { projectId, branchId, sql: "SELECT name FROM compat_items ORDER BY id" });
  if (!t.includes('"one"') || !t.includes('"two"')) fail(`run_sql rows: ${t}`);
  ok("run_sql (real rows)");
  t = await call(personal, "run_sql", { projectId, branchId, sql: "SELECT * FROM no_such_table" }, { expectError: true });
  if (!t.includes('relation "no_such_table" does not exist')) fail(`run_sql error: ${t}`);
  ok("run_sql (PostgreSQL error)");
  t = await call(personal, "get_database_tables", { projectId, branchId });
  if (!t.includes("compat_items")) fail(`get_database_tables: ${t}`);
  ok("get_database_tables");
  t = await call(personal, "describe_table_schema", { projectId, branchId, tableName: "compat_items" });
  if (!t.includes("name") || !t.includes("integer")) fail(`describe_table_schema: ${t}`);
  ok("describe_table_schema");
  t = await call(personal, "describe_branch", { projectId, branchId });
  if (!t.includes("compat_items")) fail(`describe_branch: ${t}`);
  ok("describe_branch");
  // The default branch did not get the child's table.
  t = await call(personal, "get_database_tables", { projectId });
  if (t.includes("compat_items")) fail(`the default branch has the child's table: ${t}`);
  ok("get_database_tables (default branch, isolated from the child)");

  // explain_sql_statement: EXPLAIN (ANALYZE, VERBOSE, BUFFERS, FILECACHE, FORMAT JSON) by
  // default (FILECACHE is Neon's compute's own option), EXPLAIN (VERBOSE, FORMAT JSON) without
  // analyze; run through run_sql, a real plan of the branch's table.
  t = await call(personal, "explain_sql_statement", { projectId, branchId, sql: "SELECT name FROM compat_items WHERE id = 1" });
  if (!t.includes("Plan") || !t.includes("compat_items") || !t.includes("Actual Rows")) fail(`explain_sql_statement: ${t}`);
  t = await call(personal, "explain_sql_statement", { projectId, branchId, sql: "SELECT name FROM compat_items WHERE id = 1", analyze: false });
  if (!t.includes("Plan") || !t.includes("compat_items") || t.includes("Actual Rows")) fail(`explain_sql_statement (analyze false): ${t}`);
  ok("explain_sql_statement (ANALYZE with Neon's FILECACHE option, and without analyze: real plans)");

  // reset_from_parent (by name, nothing preserved: the branch has no children): the child is
  // its parent's state again, so its table and rows are gone (the parent never had them).
  await waitOps(projectId);
  [t] = await callWhenUnlocked(personal, "reset_from_parent", { projectId, branchIdOrName: "compat-dev" });
  if (!t.includes("Branch reset from parent successfully") || !t.includes("Previous state was not preserved")) fail(`reset_from_parent: ${t}`);
  await waitOps(projectId);
  t = await call(personal, "run_sql", { projectId, branchId, sql: "SELECT * FROM compat_items" }, { expectError: true });
  if (!t.includes('relation "compat_items" does not exist')) fail(`after reset_from_parent: ${t}`);
  ok("reset_from_parent (by name: the rows written on the child are gone)");
  // By id, with preserveUnderName: the row written since is gone, the old state is kept in a
  // backup branch that (as on Neon) becomes the branch's parent and has no compute.
  await call(personal, "run_sql_transaction", { projectId, branchId, sqlStatements: ["CREATE TABLE compat_later (n int)", "INSERT INTO compat_later VALUES (1)"] });
  [t] = await callWhenUnlocked(personal, "reset_from_parent", { projectId, branchIdOrName: branchId, preserveUnderName: "compat-dev-old" });
  if (!t.includes("Previous state preserved as: compat-dev-old")) fail(`reset_from_parent (preserve): ${t}`);
  await waitOps(projectId);
  t = await call(personal, "run_sql", { projectId, branchId, sql: "SELECT * FROM compat_later" }, { expectError: true });
  if (!t.includes('relation "compat_later" does not exist')) fail(`after reset_from_parent (preserve): ${t}`);
  const branches = (await api("GET", `/projects/${projectId}/branches`)).branches;
  const old = branches.find((b) => b.name === "compat-dev-old");
  if (!old) fail(`reset_from_parent: no compat-dev-old in ${JSON.stringify(branches.map((b) => b.name))}`);
  if (branches.find((b) => b.id === branchId).parent_id !== old.id) fail(`reset_from_parent: the backup is not the branch's parent`);
  await api("POST", `/projects/${projectId}/endpoints`, { endpoint: { branch_id: old.id, type: "read_write" } });
  await waitOps(projectId);
  t = await call(personal, "run_sql", { projectId, branchId: old.id, sql: "SELECT count(*)::int AS n FROM compat_later" });
  if (!/"n":\s*1/.test(t)) fail(`the preserved branch: ${t}`);
  ok("reset_from_parent (by id, preserveUnderName: the row is gone, kept in the backup, now the parent)");

  // prepare_database_migration: a temporary branch off the default one with the migration
  // applied; the default branch does not have it until complete_database_migration, which
  // applies it there and deletes the temporary branch.
  [t] = await callWhenUnlocked(personal, "prepare_database_migration", {
    projectId, migrationSql: "CREATE TABLE compat_migrated (id int PRIMARY KEY, note text);\nINSERT INTO compat_migrated VALUES (42, 'migrated');",
  });
  const migrationId = match(t, /<migration_id>([^<]+)<\/migration_id>/, "prepare_database_migration")[1];
  const tempBranch = match(t, /<id>(br-[a-z0-9-]+)<\/id>/, "prepare_database_migration temporary branch")[1];
  t = await call(personal, "run_sql", { projectId, branchId: tempBranch, sql: "SELECT note FROM compat_migrated" });
  if (!t.includes('"migrated"')) fail(`the temporary branch: ${t}`);
  t = await call(personal, "get_database_tables", { projectId });
  if (t.includes("compat_migrated")) fail(`the default branch has the migration before complete: ${t}`);
  ok("prepare_database_migration (applied on a temporary branch only)");
  await waitOps(projectId);
  t = await call(personal, "complete_database_migration", { migrationId });
  if (!t.includes(tempBranch)) fail(`complete_database_migration: ${t}`);
  t = await call(personal, "run_sql", { projectId, sql: "SELECT id, note FROM compat_migrated" });
  if (!t.includes('"migrated"') || !t.includes("42")) fail(`the default branch after complete: ${t}`);
  await waitOps(projectId);
  if ((await api("GET", `/projects/${projectId}/branches`)).branches.some((b) => b.id === tempBranch)) {
    fail(`complete_database_migration left ${tempBranch}`);
  }
  ok("complete_database_migration (applied on the default branch; temporary branch deleted)");
}

await callWhenUnlocked(personal, "delete_branch", { projectId, branchId });
ok("delete_branch");
await callWhenUnlocked(personal, "delete_project", { projectId });
ok("delete_project");
await personal.close();

// --- An org key: GET /auth says api_key_org, the server reads GET /organizations/{id}.
const org = await start(env.ORG_KEY);
ok("start (org key: GET /auth, GET /organizations/{org_id})");
t = await call(org, "list_projects", {});
ok("list_projects (org key, org inferred)");
t = await call(org, "list_organizations", {});
if (!t.includes(env.ORG_ID)) fail(`list_organizations (org key): ${t}`);
ok("list_organizations (org key: its own org)");
await org.close();

// --- A project-scoped key (made here with the personal key): the server starts as for an org
// key and sees that one project.
async function api(method, p, body, key = env.PERSONAL_KEY) {
  const res = await fetch(env.NEON_API_HOST + p, {
    method,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json();
  if (!res.ok) fail(`${method} ${p}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}
const other = (await api("POST", "/projects", { project: { name: "compat-mcp-other", org_id: env.ORG_ID } })).project.id;
const mine = (await api("POST", "/projects", { project: { name: "compat-mcp-scoped", org_id: env.ORG_ID } })).project.id;
const made = await api("POST", `/organizations/${env.ORG_ID}/api_keys`, { key_name: "compat-mcp", project_id: mine });
const scoped = await start(made.key);
ok("start (project-scoped key)");
t = await call(scoped, "list_projects", {});
if (!t.includes(mine) || t.includes(other)) fail(`list_projects (project key) should show ${mine} only: ${t}`);
ok("list_projects (project-scoped key: its project only)");
t = await call(scoped, "describe_project", { projectId: other }, { expectError: true });
ok("describe_project of another project (project-scoped key: not found)");
await scoped.close();
await api("DELETE", `/organizations/${env.ORG_ID}/api_keys/${made.id}`);
for (const id of [mine, other]) {
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`${env.NEON_API_HOST}/projects/${id}`, { method: "DELETE", headers: { Authorization: `Bearer ${env.PERSONAL_KEY}` } });
    if (res.ok) break;
    if (res.status !== 423) fail(`DELETE /projects/${id}: ${res.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
