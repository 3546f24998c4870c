"""Real-process helpers shared by the test suites and the benchmarks (bench/ imports them too)."""
