"""One router per resource: payments (seed 000's retry queue), checkout (seed 004's customer
routes), process, events, tokens, and the operational routes (health, readiness, metrics)."""
