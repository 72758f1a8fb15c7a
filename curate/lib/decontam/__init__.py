"""Benchmark decontamination helpers: vectorized n-gram hashing and the benchmark index."""
