"""Benchmarks: each module `bench/<name>.py` exposes run() -> list of result rows; `make bench` runs all."""
