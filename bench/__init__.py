"""Benchmarks: what the mltest suite costs against plain PyTorch. Run `python -m bench.run`."""
