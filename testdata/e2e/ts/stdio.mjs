// Drives the neonguard binary over stdio with the official TypeScript MCP client.
// Usage: node stdio.mjs BINARY DATA_DIR. Prints one JSON object: {tools:[...], calls:[...]}.
// The client validates every structuredContent against the tool's outputSchema and throws on a
// mismatch, so a call that comes back here was accepted by it.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [bin, dataDir] = process.argv.slice(2);
const transport = new StdioClientTransport({
  command: bin,
  args: ["serve", "--data-dir", dataDir],
  env: { ...process.env },
  stderr: "ignore",
});
const client = new Client({ name: "neonguard-e2e-ts", version: "1.0.0" });
await client.connect(transport);

const out = { tools: [], calls: [] };
const listed = await client.listTools();
out.tools = listed.tools.map((t) => t.name);

async function call(name, args) {
  try {
    const res = await client.callTool({ name, arguments: args });
    let code = "";
    if (res.isError) {
      code = JSON.parse(res.content[0].text).error.code;
    }
    out.calls.push({ name, isError: !!res.isError, code, structured: res.structuredContent ?? null });
    return res.structuredContent;
  } catch (e) {
    out.calls.push({ name, isError: true, code: "CLIENT_REJECTED", message: String(e) });
    return null;
  }
}

await call("describe_limits", {});
await call("list_databases", {});
const db = await call("create_database", { name: "ts-app" });
const id = db?.database_id ?? "missing";
await call("create_database", { name: "ts-app" });
await call("checkpoint", { database_id: id, name: "first" });
await call("checkpoint", { database_id: id, name: "second" }); // SNAPSHOT_LIMIT on free
await call("list_checkpoints", { database_id: id });
await call("create_dev_branch", { database_id: id, name: "feature-x", ttl: "2h" });
await call("list_branches", { database_id: id });
await call("get_connection_string", { database_id: id, branch: "feature-x" });
await call("get_usage", { database_id: id });
await new Promise((r) => setTimeout(r, 1500));
await call("undo_to_time", { database_id: id, ago: "1s" });
await call("restore_checkpoint", { database_id: id, checkpoint: "first" });
await call("delete_dev_branch", { database_id: id, branch: "feature-x" });
await call("get_usage", { database_id: "no-such-db" }); // NOT_FOUND
await call("undo_to_time", { database_id: id, ago: "-5m" }); // INVALID_ARGUMENT

await client.close();
process.stdout.write(JSON.stringify(out) + "\n");
