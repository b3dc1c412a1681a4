"""MCP client config files, and putting mcp-guard in front of the servers they start (stdio, and remote ones).

* :mod:`~mcp_guard.clients.known`: the clients mcp-guard knows and where each keeps its config files;
* :mod:`~mcp_guard.clients.files`: reading a config file, and writing it back safely (backup, atomic replace);
* :mod:`~mcp_guard.clients.launch`: the guard's own command line inside a server entry;
* :mod:`~mcp_guard.clients.remote`: remote (HTTP) entries and the mcp-remote bridge that guards them;
* :mod:`~mcp_guard.clients.edit`: wrapping and unwrapping the entries of one file's text, in place.

Pure logic, no argparse: :mod:`mcp_guard.commands.wrap` is the command line on top.
"""
