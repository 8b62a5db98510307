"""Benchmarks run on a lab: what an operator pays for the safety, as ratios measured side by side."""
