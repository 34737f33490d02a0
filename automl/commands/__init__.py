"""The `automl` subcommands that do more than print: `run` (a sweep or plain training) and `worker`."""

__all__: list[str] = []
