"""Replayed searches: the real search backends run on a table of measured learning curves, with
simulated trials and workers, to compare search methods over many seeds (bench/search_quality.py)."""

__all__: list[str] = []
