"""Persistent actor state and the stores that keep it."""
