"""http subsystem."""
