"""JSON-RPC over newline-delimited stdio: framing, strict parsing, and the messages the guard writes."""
