"""What every action shares at run time.

- ``action_session``: the results folder, experiment.yaml, the torchrun re-launch, FAILURE on error.
- ``determinism``: ``train.seed`` and ``train.cudnn``.
- ``distributed``: the world of processes (torchrun, DDP, TAO's launch variables), collectives.
- ``status``: TAO's status.json writer and reader.
- ``trainer``: the training loop (``optim``, ``ema``, ``activation_checkpoint``, ``timing``).
- ``validation``: one pass over an evaluation loader (loss and COCO metrics, ``coco_metrics``).
- ``evaluation``: COCO evaluation on the test set with the ``evaluate.*`` settings.
- ``model_to_run``: the network evaluate and inference run (a deployed file or a checkpoint).

Checkpoint files are ``model.checkpoints``. Importing this package imports none of its modules.
"""

from __future__ import annotations

__all__ = [
    "action_session",
    "activation_checkpoint",
    "coco_metrics",
    "determinism",
    "distributed",
    "ema",
    "evaluation",
    "model_to_run",
    "optim",
    "status",
    "timing",
    "trainer",
    "validation",
]
