"""Runs: one run's session around the scheduler, its record, which runs a command means, run options."""
