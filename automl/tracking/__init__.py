"""MLflow tracking: sweep = parent run, trial = child run, pipeline steps = child runs; `automl ui`."""

__all__: list[str] = []
