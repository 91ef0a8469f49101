"""Poisoning attacks: they change the training data and retrain the target with its recipe."""
