"""Benchmark modules. Each exposes ``NAME``, ``KEYS`` and ``run(ctx) -> dict`` (see bench.run)."""
