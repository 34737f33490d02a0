"""The Ray Tune backend: the Tuner on a local or remote cluster, its driver callback and trainable."""

__all__: list[str] = []
