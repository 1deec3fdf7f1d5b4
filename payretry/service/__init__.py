"""Use cases: queue, status, cancel, retry, run_due, stats. No printing, no exit codes."""
