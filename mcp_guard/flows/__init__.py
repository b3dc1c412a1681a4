"""Flow rules (issue 20): labels a client session acquires from successful calls, and rules that refuse (or ask
about) a call to a tool carrying a ``to`` label while a ``from`` label is held. The ledger of held labels lives
beside the limiter's counters, in the same store, so guards started by one client share it."""
