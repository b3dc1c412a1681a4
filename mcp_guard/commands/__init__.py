"""Subcommands of ``mcp-guard``, one module each, imported only when used."""
