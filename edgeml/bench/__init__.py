"""Benchmarking: latency statistics, accuracy/fidelity metrics, environment capture, the harness."""
