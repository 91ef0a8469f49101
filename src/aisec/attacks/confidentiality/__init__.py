"""Confidentiality attacks: stealing the model or what it keeps secret through its API."""
