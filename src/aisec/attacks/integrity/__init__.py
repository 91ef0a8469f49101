"""Integrity attacks."""
