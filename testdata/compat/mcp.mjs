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
match(t, /postgresql:\/\/\S+/, "get_connection_string");
ok("get_connection_string");

t = await call(personal, "list_branch_computes", { projectId });
if (!t.includes("ep-")) fail(`list_branch_computes: ${t}`);
ok("list_branch_computes");

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
