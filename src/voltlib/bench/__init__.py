"""Benchmark tooling for ``voltlib bench gateway``: load generator, baseline and ceiling servers."""
