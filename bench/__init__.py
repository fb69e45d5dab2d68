"""Benchmarks of the harness's own procedures against the real gateway (`make bench`)."""
