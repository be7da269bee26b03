"""Benchmarks comparing tune_client against Ray Tune on identical workloads."""
