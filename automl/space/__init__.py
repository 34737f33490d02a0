"""The search space: generated schema rows -> search parameters -> sampled spec values."""

from automl.space.params import SearchParam, SearchSpace

__all__ = ["SearchParam", "SearchSpace"]
