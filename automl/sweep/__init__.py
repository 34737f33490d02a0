"""The sweep loop and its record: plan, loop, trial records, best-trial selection, display."""

__all__: list[str] = []
