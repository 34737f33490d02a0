"""The best trial's pipeline: evaluate -> export -> gen_trt_engine -> evaluate the deployed model."""

__all__: list[str] = []
