# ruff: noqa: RUF009  (the field helpers return dataclasses.field objects, evaluated once by design)
"""``train.*``: trainer, optimizer, EMA and cuDNN settings (TAO's ``RTTrainExpConfig``)."""

from __future__ import annotations

from dataclasses import dataclass

from model.config.fields import (
    INF,
    bool_field,
    dataclass_field,
    float_field,
    int_field,
    list_field,
    opt_in,
    str_field,
)

__all__ = ["CuDNNConfig", "RTEMAConfig", "RTOptimConfig", "RTTrainExpConfig"]


@dataclass
class CuDNNConfig:
    """``train.cudnn``: cuDNN switches."""

    benchmark: bool = bool_field(False)
    deterministic: bool = bool_field(True)


@dataclass
class RTEMAConfig:
    """``train.ema``: exponential moving average of the weights (used when ``train.enable_ema``)."""

    decay: float = float_field(
        0.999,
        display_name="ema decay",
        description="The decreasing factor for the exponential moving average.",
        valid_min=0.0,
        valid_max=1.0,
        math_cond="> 0.0",
        automl=True,
    )
    every_n_steps: int = int_field(
        1,
        display_name="every_n_steps",
        description="The number of steps to perform exponential moving average.",
        valid_min=1,
        valid_max=INF,
    )
    validate_original_weights: bool = bool_field(
        False,
        display_name="validate original weights",
        description="Whether to run evaluation using the non-EMA weight.",
    )
    cpu_offload: bool = bool_field(
        False,
        display_name="cpu offload",
        description="Offload EMA calculation to CPU. Note that this will significantly slow down training.",
    )
    warmup_steps: int = int_field(
        0,
        display_name="ema warm-up steps",
        description=(
            "Ramp the EMA decay up from 0 as decay * (1 - exp(-updates / warmup_steps)), so the average "
            "follows the fast-changing early weights. 0 uses the full decay from the first update "
            "(TAO's behaviour). Not a TAO key."
        ),
        valid_min=0,
        valid_max=INF,
    )


@dataclass
class RTOptimConfig:
    """``train.optim``: optimizer and learning-rate schedule."""

    optimizer: str = str_field(
        "AdamW",
        description="Type of optimizer used to train the network.",
        options=["AdamW", "SGD"],
    )
    monitor_name: str = str_field(
        "val_loss",
        display_name="monitor_name",
        description="The metric value to be monitored for the :code:`AutoReduce` Scheduler.",
        options=["val_loss", "train_loss"],
    )
    lr: float = float_field(
        0.0001,
        display_name="learning rate",
        description="The initial learning rate for training the model, excluding the backbone.",
        valid_min=0.0,
        valid_max=1.0,
        math_cond="> 0.0",
        automl=True,
    )
    lr_backbone: float = float_field(
        1e-05,
        display_name="learning rate - backbone",
        description="The initial learning rate for training the backbone.",
        valid_min=0.0,
        valid_max=1.0,
        math_cond="> 0.0",
        automl=True,
    )
    momentum: float = float_field(
        0.9,
        display_name="momentum - AdamW",
        description="The momentum for the AdamW optimizer.",
        valid_min=0.0,
        valid_max=1.0,
        math_cond="> 0.0",
        automl=True,
    )
    weight_decay: float = float_field(
        0.0001,
        display_name="weight decay",
        description="The weight decay coefficient.",
        valid_min=0.0,
        valid_max=1.0,
        math_cond="> 0.0",
        automl=True,
    )
    lr_scheduler: str = str_field(
        "MultiStep",
        display_name="learning rate scheduler",
        description=(
            "The learning scheduler: * MultiStep : Decrease the lr by lr_decay from lr_steps "
            "* StepLR : Decrease the lr by lr_decay at every lr_step_size. "
            "* FlatCosine : Hold the lr (after the warm-up) for flat_fraction of the training steps, "
            "then follow a cosine down to lr * min_lr_ratio at the last step (not a TAO option)."
        ),
        options=["MultiStep", "StepLR", "FlatCosine"],
    )
    lr_steps: list[int] = list_field(
        [1000],
        display_name="learning rate decay steps",
        description=(
            "The steps at which the learning rate must be decreased. "
            "This is applicable only with the MultiStep LR."
        ),
    )
    lr_step_size: int = int_field(
        1000,
        display_name="learning rate step size",
        description="The number of steps to decrease the learning rate in the StepLR.",
        valid_min=1,
        valid_max=10000,
        math_cond="> 0",
        automl=True,
    )
    lr_decay: float = float_field(
        0.1,
        display_name="learning rate decay",
        description="The decreasing factor for the learning rate scheduler.",
        valid_min=0.0,
        valid_max=1.0,
        math_cond="> 0.0",
        automl=True,
    )
    warmup_steps: int = int_field(
        0,
        display_name="warm up steps",
        description="The number of steps to perform linear learning rate warm-up.",
        valid_min=0,
        valid_max=INF,
    )
    flat_fraction: float = opt_in(
        float_field(
            0.5,
            display_name="flat fraction",
            description=(
                "FlatCosine: the fraction of the training steps at the full lr before the cosine decay "
                "starts (the warm-up counts in it). Not a TAO key."
            ),
            valid_min=0.0,
            valid_max=1.0,
            automl=True,
        )
    )
    min_lr_ratio: float = opt_in(
        float_field(
            0.05,
            display_name="minimum lr ratio",
            description="FlatCosine: the lr at the last step, as a fraction of the initial lr. Not a TAO key.",
            valid_min=0.0,
            valid_max=1.0,
            automl=True,
        )
    )


@dataclass
class RTTrainExpConfig:
    """``train``: the training job (GPUs, epochs, checkpoints, precision, optimizer)."""

    num_gpus: int = int_field(
        1,
        display_name="Number of GPUs",
        description="The number of GPUs to run the train job.",
        valid_min=1,
        popular=True,
    )
    gpu_ids: list[int] = list_field(
        [0],
        display_name="GPU IDs",
        description=(
            "List of GPU IDs to run the training on. The length of this list must be equal to the "
            "number of gpus in train.num_gpus."
        ),
        popular=True,
    )
    num_nodes: int = int_field(
        1,
        display_name="Number of nodes",
        description="Number of nodes to run the training on. If > 1, then multi-node is enabled.",
        valid_min=1,
        popular=True,
    )
    seed: int = int_field(
        1234,
        display_name="Seed for randomization",
        description="The seed for the initializer in PyTorch. If < 0, disable fixed seed.",
        valid_min=-1,
        valid_max=INF,
    )
    cudnn: CuDNNConfig = dataclass_field(CuDNNConfig)
    num_epochs: int = int_field(
        10,
        display_name="Number of epochs",
        description="Number of epochs to run the training.",
        valid_min=1,
        valid_max=INF,
        popular=True,
    )
    checkpoint_interval: int = int_field(
        1,
        display_name="Checkpoint interval",
        description=("The interval (in epochs) at which a checkpoint will be saved. Helps resume training."),
        valid_min=1,
        popular=True,
    )
    checkpoint_interval_unit: str = str_field(
        "epoch",
        display_name="Checkpoint interval unit",
        description="The unit of the checkpoint interval.",
        options=["epoch", "step"],
    )
    validation_interval: int = int_field(
        1,
        display_name="Validation interval",
        description=(
            "The interval (in epochs) at which a evaluation will be triggered on the validation dataset."
        ),
        valid_min=1,
        popular=True,
    )
    resume_training_checkpoint_path: str = str_field(
        "",
        display_name="Resume checkpoint path",
        description="Path to the checkpoint to resume training from.",
    )
    results_dir: str = str_field(
        "",
        display_name="Results directory",
        description="Path to where all the assets generated from a task are stored.",
    )
    freeze: list[str] = list_field(
        [],
        display_name="freeze",
        description='List of layer names to freeze. Example: ["backbone", "encoder", "decoder"].',
    )
    pretrained_model_path: str = str_field(
        "",
        description="Path to a pre-trained RT-DETR model to initialize the current training from.",
    )
    clip_grad_norm: float = float_field(
        0.1,
        display_name="clip gradient norm",
        description="Amount to clip the gradient by L2 Norm. A value of 0.0 specifies no clipping.",
        math_cond="> 0.0",
    )
    is_dry_run: bool = bool_field(
        False,
        display_name="Is dry run",
        description=(
            "Whether to run the trainer in Dry Run mode. This serves as a good means to validate the "
            "spec file and run a sanity check on the trainer without actually initializing and "
            "running the trainer."
        ),
    )
    time_budget: str = str_field(
        "",
        display_name="time budget",
        description=(
            "Fit the run to a deadline: seconds (300) or a duration (90s, 5m, 1.5h). After each epoch "
            "the number of epochs and the lr schedule (lr_steps, lr_step_size, the cosine length) are "
            "rescaled so the schedule completes when the time is up. Empty: train.num_epochs as "
            "written. Not a TAO key."
        ),
        regex=r"^(\s*|\s*[0-9]+(\.[0-9]+)?\s*[smh]?\s*)$",
    )
    enable_ema: bool = bool_field(
        False,
        display_name="enable ema",
        description="Whether to enable Exponential Moving Average during training.",
    )
    ema: RTEMAConfig = dataclass_field(
        RTEMAConfig,
        display_name="ema",
        description="Hyper parameters to configure the Exponential Moving Average.",
    )
    optim: RTOptimConfig = dataclass_field(
        RTOptimConfig,
        display_name="optimizer",
        description="Hyper parameters to configure the optimizer.",
    )
    precision: str = str_field(
        "fp32",
        display_name="precision",
        description="Precision to run the training on.",
        options=["bf16", "fp32", "fp16"],
    )
    distributed_strategy: str = str_field(
        "ddp",
        display_name="distributed_strategy",
        description=(
            "The multi-GPU training strategy. DDP (Distributed Data Parallel) and Fully Sharded DDP "
            "are supported."
        ),
        options=["ddp", "fsdp"],
    )
    activation_checkpoint: bool = bool_field(
        True,
        display_name="enable activation checkpointing",
        description=(
            "A True value instructs train to recompute in backward pass to save GPU memory, "
            "rather than storing activations."
        ),
    )
