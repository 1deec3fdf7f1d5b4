"""payretry: retry failed payments safely."""

__version__ = "0.1.0"
