"""``rtdetr <action>`` implementations, one module per action. Each takes the spec ``model.spec``
resolved, runs in its results folder (``model.engine.action_session``) and exposes
``run(spec, argv) -> exit code``; ``model.cli`` imports the module a command names."""

from __future__ import annotations

__all__ = ["distill", "evaluate", "export", "gen_trt_engine", "inference", "quantize", "train"]
