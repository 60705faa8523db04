"""Benchmark runner: `python -m benchmarks --ops norm,activation,quantization [--quick]`.

Each domain module benchmarks/<domain>.py defines `run(quick: bool) -> list[dict]`; the runner
measures the device-to-device copy ceiling in the same process, fills the derived columns, writes
benchmarks/results/<gpu>.json and regenerates the table in docs/performance.md.
"""
