"""executors subsystem."""
