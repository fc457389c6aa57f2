"""Benchmarks and synthetic data generators (not part of the installed server)."""
