"""Benchmarks: each one measures a part of the platform and writes ``bench/results/NAME.json``.

Run one with ``python -m bench NAME [--quick]`` or ``reelytics bench NAME``; register new ones with
:func:`bench.harness.benchmark`.
"""
