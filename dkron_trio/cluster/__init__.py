"""The agent's replicated state over the embedded Raft: forwarding, formation, membership."""
