"""Tool integrity: what a server's tools are, and what a call may touch.

* :mod:`mcp_guard.integrity.pins`: SHA-256 pins of whole tool definitions in a lock file,
  comparison with what a server lists now, and :class:`~mcp_guard.integrity.pins.PinChecker`,
  which filters ``tools/list`` results and answers whether a tool may be called;
* :mod:`mcp_guard.integrity.validate`: arguments checked against a tool's ``inputSchema``;
* :mod:`mcp_guard.integrity.protect`: arguments that name the guard's own files (its policy,
  state, audit log) in any common path spelling;
* :mod:`mcp_guard.integrity.fingerprint`: a per-installation secret and keyed fingerprints of
  arguments.

Each module is self-contained, synchronous and cheap to import (``jsonschema`` is imported
only when the first schema is compiled).
"""
