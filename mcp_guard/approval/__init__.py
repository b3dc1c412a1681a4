"""Asking a person before a call is relayed: pending requests and grants, and the channels that ask.

* :mod:`mcp_guard.approval.request`: what a person is asked about (:class:`ApprovalRequest`), how the
  call's arguments are shown to them, and the fingerprint that says two calls are identical.
* :mod:`mcp_guard.approval.store`: the SQLite file shared by every guard and the ``mcp-guard
  approvals``/``approve``/``deny`` commands, holding pending requests, decisions and grants.
* :mod:`mcp_guard.approval.command`: ask by running a program (a desktop dialog, a chat bot).
* :mod:`mcp_guard.approval.tty`: ask on the controlling terminal.

Everything here is synchronous and meant to be called from the relay's pump threads.
"""
