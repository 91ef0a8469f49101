"""Availability attacks: poisoning that makes a model refuse harmless inputs, and sponge inputs."""
