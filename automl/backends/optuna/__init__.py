"""The Optuna backend: study storage, samplers and pruners, PBT without Ray, resume, shared budget."""

__all__: list[str] = []
