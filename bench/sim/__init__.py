"""Simulation helpers for the benchmarks (a fleet of workers in one process)."""
