// Drives a running `neonguard serve --transport http` with the official TypeScript MCP client,
// over Streamable HTTP (/mcp) or the legacy SSE transport (/sse + /message).
//
// Usage: NEONGUARD_E2E_TOKEN=ngt_… node http.mjs BASE_URL streamable|sse [--expect-unauthorized]
//
// The bearer token comes from the environment, never argv, so it does not show in process
// lists. Prints one JSON object on stdout:
//   {transport, connected: true, tools: [...], calls: [{name, isError, code, structured}]}
// or, when the connection fails (expected with --expect-unauthorized):
//   {transport, connected: false, error, status}
// The client validates every structuredContent against the tool's outputSchema and throws on a
// mismatch, so a call that comes back here was accepted by it.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [base, kind, flag] = process.argv.slice(2);
const expectUnauthorized = flag === "--expect-unauthorized";
const token = process.env.NEONGUARD_E2E_TOKEN ?? "";
if (!base || (kind !== "streamable" && kind !== "sse")) {
  process.stderr.write("usage: NEONGUARD_E2E_TOKEN=… node http.mjs BASE_URL streamable|sse [--expect-unauthorized]\n");
  process.exit(2);
}

function emit(obj) {
  // Exit only once stdout is flushed: an open SSE stream would otherwise keep node running.
  process.stdout.write(JSON.stringify(obj) + "\n", () => process.exit(0));
}

// requestInit.headers go on every request of both transports: the POSTs and, in SDK 1.32, the
// GET that opens the SSE stream too (SSEClientTransport._commonHeaders). The fetch wrapper below
// makes sure of the latter whatever the SDK version, since EventSource cannot set headers itself.
const headers = token ? { Authorization: `Bearer ${token}` } : {};
const withAuth = (url, init = {}) => {
  const h = new Headers(init.headers);
  for (const [k, v] of Object.entries(headers)) h.set(k, v);
  return fetch(url, { ...init, headers: h });
};
const transport =
  kind === "streamable"
    ? new StreamableHTTPClientTransport(new URL("/mcp", base), { requestInit: { headers } })
    : new SSEClientTransport(new URL("/sse", base), {
        requestInit: { headers },
        eventSourceInit: { fetch: withAuth },
      });

const client = new Client({ name: `neonguard-e2e-ts-${kind}`, version: "1.0.0" });
try {
  await client.connect(transport);
} catch (e) {
  emit({ transport: kind, connected: false, error: String(e?.message ?? e), status: e?.code ?? null });
  await new Promise(() => {}); // emit exits
}
if (expectUnauthorized) {
  await client.close();
  emit({ transport: kind, connected: true, error: "connected although the token should be refused" });
  await new Promise(() => {});
}

const out = { transport: kind, connected: true, tools: [], calls: [] };
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
  } catch (e) {
    out.calls.push({ name, isError: true, code: "CLIENT_REJECTED", message: String(e), structured: null });
  }
}

await call("describe_limits", {});
await call("create_database", { name: `ts-${kind}` });
await call("list_databases", {});

await client.close();
emit(out);
