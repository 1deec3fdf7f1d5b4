"""Where events and metrics go: JSON lines, a signed webhook, Segment, DogStatsD, Prometheus.
Each sink's library is imported only when that sink is built (payretry/wiring/sinks.py)."""
