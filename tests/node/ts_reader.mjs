// The TypeScript SDK reader for mcp-guard's differential tests (tests/test_differential.py): an
// McpServer over the SDK's StdioServerTransport that records what it executes.
//
// Tools: safe(), evil(), pay({amount, to, delay?}) (sleeps `delay` seconds; `to == "fail"` answers
// with an isError result) and dashboard({dashboardUid}). Every tool, when the SDK runs it, appends
// {"tool": NAME, "arguments": {...}} (the arguments as the SDK handed them to the handler, after zod)
// to the file named by MCP_GUARD_TEST_CALLS before doing anything else; every chunk read from stdin is
// appended to MCP_GUARD_TEST_WIRE before the transport sees it (this listener is registered first).
import { appendFileSync } from "node:fs";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";

import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";

const CALLS = process.env.MCP_GUARD_TEST_CALLS;
const WIRE = process.env.MCP_GUARD_TEST_WIRE;
if (!CALLS || !WIRE) {
  process.stderr.write("ts_reader: set MCP_GUARD_TEST_CALLS and MCP_GUARD_TEST_WIRE\n");
  process.exit(2);
}

process.stdin.on("data", (chunk) => appendFileSync(WIRE, chunk));

function record(tool, args) {
  appendFileSync(CALLS, JSON.stringify({ tool, arguments: args }) + "\n");
}

const text = (value) => ({ content: [{ type: "text", text: value }] });

const server = new McpServer({ name: "ts-reader", version: "1.0.0" });

server.registerTool("safe", { description: "Harmless." }, async () => {
  record("safe", {});
  return text("safe done");
});

server.registerTool("evil", { description: "Always refused by the tests' policy." }, async () => {
  record("evil", {});
  return text("evil done");
});

server.registerTool(
  "pay",
  {
    description: "Pay `amount` to `to` after `delay` seconds; `to == \"fail\"` fails.",
    inputSchema: { amount: z.number(), to: z.string(), delay: z.number().optional() },
  },
  async ({ amount, to, delay }) => {
    record("pay", { amount, to, delay: delay ?? 0 });
    if (delay) await sleep(delay * 1000);
    if (to === "fail") return { ...text(`payment of ${amount} failed`), isError: true };
    return text(`paid ${amount} to ${to}`);
  },
);

server.registerTool(
  "dashboard",
  { description: "Open a dashboard.", inputSchema: { dashboardUid: z.string() } },
  async ({ dashboardUid }) => {
    record("dashboard", { dashboardUid });
    return text(`dashboard ${dashboardUid}`);
  },
);

await server.connect(new StdioServerTransport());
