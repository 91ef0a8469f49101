"""Privacy attacks."""
