"""Sweeps: spec (YAML grid), results store (SQLite), runner (executors), statistics and report."""
