"""Benchmarks of Berth against CNCF Distribution 2.8 (run by hand: ``python -m bench.run``)."""
