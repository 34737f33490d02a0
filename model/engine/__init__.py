"""What every action shares at run time: status.json, checkpoints, torchrun/DDP, optimiser, EMA."""
