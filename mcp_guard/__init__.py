"""mcp-guard: a local policy guard for MCP tool calls."""

__version__ = "0.1.0"
