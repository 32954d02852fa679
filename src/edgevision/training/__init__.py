"""Training loops, schedules and checkpoints."""
