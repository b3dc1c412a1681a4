// A TypeScript SDK server with resources, for mcp-guard's red-team tests (tests/test_redteam_calls.py).
// McpServer reads a resources/read URI through `new URL(...)` (WHATWG): tabs and newlines removed,
// spaces trimmed, backslashes as slashes, dot segments (also %2e%2e) resolved, scheme and host lower-cased.
// Every resource it serves appends "read URI" to the file named by its first argument.
import { appendFileSync } from "node:fs";
import process from "node:process";

import { McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";

const LOG = process.argv[2];
const acted = (what) => {
  if (LOG) appendFileSync(LOG, what + "\n");
};
const text = (uri, value) => ({ contents: [{ uri: uri.href, text: value }] });

const server = new McpServer({ name: "ts-resources", version: "1.0.0" });

server.registerResource("hostname", "file:///etc/hostname", {}, async (uri) => {
  acted("read file:///etc/hostname");
  return text(uri, "guarded-host\n");
});
server.registerResource("notes", "file:///srv/notes.txt", {}, async (uri) => {
  acted("read file:///srv/notes.txt");
  return text(uri, "notes\n");
});
server.registerResource(
  "page",
  new ResourceTemplate("https://example.com/page/{n}", { list: undefined }),
  {},
  async (uri, { n }) => {
    acted(`read https://example.com/page/${n}`);
    return text(uri, `page ${n}`);
  },
);

await server.connect(new StdioServerTransport());
