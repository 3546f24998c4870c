"""Helpers that behave like Gong's side, for tests, the local demo and benchmarks."""
