"""gossip subsystem."""
