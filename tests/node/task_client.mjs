// A task-augmented tools/call (2025-11-25 `params.task`) from the TypeScript SDK's own client, for
// tests/test_e2e_tasks.py: `node task_client.mjs COMMAND_JSON TOOL ARGUMENTS_JSON` starts COMMAND (a JSON
// array) over stdio, calls TOOL through client.experimental.tasks.callToolStream with a task, and prints
// each message of the stream as one JSON line: {"type", "task"?, "result"?, "error"?: {code, message, data}}.
import process from "node:process";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [command, ...args] = JSON.parse(process.argv[2]);
const tool = process.argv[3];
const toolArguments = JSON.parse(process.argv[4] ?? "{}");

const transport = new StdioClientTransport({ command, args, env: process.env, stderr: "inherit" });
const client = new Client({ name: "task-client", version: "1.0.0" }, { capabilities: { tasks: {} } });
await client.connect(transport);
const stream = client.experimental.tasks.callToolStream(
  { name: tool, arguments: toolArguments },
  undefined,
  { task: { ttl: 60000 } },
);
for await (const message of stream) {
  const out = { type: message.type };
  if (message.task) out.task = message.task;
  if (message.result) out.result = message.result;
  if (message.error) out.error = { code: message.error.code, message: message.error.message, data: message.error.data };
  process.stdout.write(JSON.stringify(out) + "\n");
}
await client.close();
