"""provlens benchmarks: ``python -m bench`` (see bench/BENCHMARKS.md for method and results)."""
