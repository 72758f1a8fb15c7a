"""Mixing stages: sample the stream into a balanced training mix."""
