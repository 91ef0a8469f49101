"""The aisec command line."""
