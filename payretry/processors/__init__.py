"""Payment processors: the simulated one here; Stripe in its own module."""
