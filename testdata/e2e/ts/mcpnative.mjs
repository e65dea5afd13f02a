// Proves the MCP conveniences of issue 14 with the official TypeScript MCP client against the
// real binary on the local backend, over stdio, Streamable HTTP or the legacy SSE transport:
// progress notifications, cancellation with an AbortSignal, completion/complete, resources,
// logging/setLevel and a warning message.
//
// Usage:
//   node mcpnative.mjs stdio BINARY DATA_DIR        (spawns `BINARY serve --data-dir DATA_DIR`)
//   NEONGUARD_E2E_TOKEN=ngt_… node mcpnative.mjs streamable|sse BASE_URL
//
// The server's settings (slow emulated operations, a short undo backup TTL) come from the
// environment the Go test sets; the bearer token from the environment, never argv. It prints
// one JSON object of facts, which cmd/neonguard/mcpnative_e2e_test.go asserts on:
//   {transport, capabilities, progress: {create_database: [...], create_dev_branch: [...]},
//    abort: {...}, completions: {...}, resources: {...}, logging: {...}, errors: [...]}
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const [kind, ...rest] = process.argv.slice(2);
if (!((kind === "stdio" && rest.length === 2) || ((kind === "streamable" || kind === "sse") && rest.length === 1))) {
  process.stderr.write("usage: node mcpnative.mjs stdio BINARY DATA_DIR | node mcpnative.mjs streamable|sse BASE_URL\n");
  process.exit(2);
}

function newTransport() {
  if (kind === "stdio") {
    return new StdioClientTransport({
      command: rest[0],
      args: ["serve", "--data-dir", rest[1]],
      env: { ...process.env },
      stderr: "ignore",
    });
  }
  const headers = { Authorization: `Bearer ${process.env.NEONGUARD_E2E_TOKEN ?? ""}` };
  if (kind === "sse") {
    // The GET that opens the stream carries the token too, whatever the SDK version (http.mjs).
    const withAuth = (url, init = {}) => {
      const h = new Headers(init.headers);
      for (const [k, v] of Object.entries(headers)) h.set(k, v);
      return fetch(url, { ...init, headers: h });
    };
    return new SSEClientTransport(new URL("/sse", rest[0]), { requestInit: { headers }, eventSourceInit: { fetch: withAuth } });
  }
  return new StreamableHTTPClientTransport(new URL("/mcp", rest[0]), { requestInit: { headers } });
}

const out = { transport: kind, capabilities: null, progress: {}, abort: {}, completions: {}, resources: {}, logging: {}, errors: [] };
const client = new Client({ name: `neonguard-e2e-ts-native-${kind}`, version: "1.0.0" });
// Protocol errors the client reports on its own, such as an answer to a request it cancelled.
client.onerror = (e) => out.errors.push(String(e?.message ?? e));
const messages = [];
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => messages.push(n.params));
await client.connect(newTransport());
out.capabilities = client.getServerCapabilities();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const structured = (res) => {
  if (res.isError) throw new Error(res.content?.[0]?.text ?? "tool error");
  return res.structuredContent;
};
// call runs a tool, recording every progress update it gets as the SDK hands it over.
async function call(name, args, updates, extra = {}) {
  const opts = { timeout: 120_000, ...extra };
  if (updates && !opts.onprogress) opts.onprogress = (p) => updates.push({ progress: p.progress, total: p.total, message: p.message });
  return client.callTool({ name, arguments: args }, undefined, opts);
}

// Progress.
const dbUpdates = [];
const db = structured(await call("create_database", { name: `native-${kind}` }, dbUpdates));
const id = db.database_id;
out.database_id = id;
out.progress.create_database = dbUpdates;
const devUpdates = [];
structured(await call("create_dev_branch", { database_id: id, name: "feat" }, devUpdates));
out.progress.create_dev_branch = devUpdates;
const fastUpdates = [];
structured(await call("list_branches", { database_id: id }, fastUpdates));
out.progress.list_branches = fastUpdates;

// Cancellation: abort create_dev_branch once Neon is working on it (its first change made).
{
  const ac = new AbortController();
  const updates = [];
  const f = { aborted_at: null, rejected: null };
  const started = Date.now();
  try {
    await call("create_dev_branch", { database_id: id, name: "aborted" }, updates, {
      signal: ac.signal,
      onprogress: (p) => {
        updates.push({ progress: p.progress, total: p.total, message: p.message });
        if (!ac.signal.aborted && p.message?.startsWith("waiting for Neon operation")) {
          f.aborted_at = p.message;
          f.aborted_progress = p.progress;
          ac.abort("the user gave up");
        }
      },
    });
    f.rejected = false;
  } catch (e) {
    f.rejected = true;
    f.error = String(e?.message ?? e);
  }
  f.elapsed_ms = Date.now() - started;
  f.updates = updates;
  // The intent settles under the database's lock: list_branches waits for it.
  await sleep(300);
  const branches = structured(await call("list_branches", { database_id: id })).branches;
  f.branches = branches.map((b) => ({ name: b.name, kind: b.kind, expires_at: b.expires_at ?? null, endpoint_state: b.endpoint_state }));
  // A late answer to the aborted request would show up in out.errors by now.
  await sleep(500);
  f.updates_after = updates.length - f.updates.length;
  out.abort = f;
}

// Completions.
{
  const complete = async (ref, value) =>
    (await client.complete({ ref, argument: { name: "database_id", value } })).completion.values;
  out.completions.prompt_empty = await complete({ type: "ref/prompt", name: "safe_migration" }, "");
  out.completions.prompt_by_name = await complete({ type: "ref/prompt", name: "feature_branch" }, "native");
  out.completions.prompt_none = await complete({ type: "ref/prompt", name: "safe_migration" }, "zzz");
  out.completions.template = await complete({ type: "ref/resource", uri: "neonguard://databases/{database_id}" }, id.slice(0, 4));
}

// Resources.
{
  out.resources.list = (await client.listResources()).resources.map((r) => r.uri);
  out.resources.templates = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
  const read = async (uri) => {
    const c = (await client.readResource({ uri })).contents[0];
    return { uri: c.uri, mimeType: c.mimeType, json: JSON.parse(c.text) };
  };
  out.resources.databases = await read("neonguard://databases");
  out.resources.database = await read(`neonguard://databases/${id}`);
  try {
    await client.readResource({ uri: "neonguard://databases/no-such-database" });
    out.resources.missing = "read";
  } catch (e) {
    out.resources.missing = String(e?.message ?? e);
  }
}

// Logging: nothing before setLevel; after it, the undo's backup (which expires within the
// hour under the test's tier) is told once as a warning.
{
  await sleep(1100);
  structured(await call("undo_to_time", { database_id: id, ago: "1s" }));
  structured(await call("list_checkpoints", { database_id: id }));
  out.logging.before_set_level = messages.length;
  await client.setLoggingLevel("warning");
  structured(await call("list_checkpoints", { database_id: id }));
  structured(await call("list_branches", { database_id: id }));
  await sleep(300);
  out.logging.messages = messages.slice();
}

if (kind !== "stdio") await client.close();
process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(0));
