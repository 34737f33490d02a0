"""Search backends behind one small interface: ``optuna`` (default) and ``ray``."""
