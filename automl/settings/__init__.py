"""What a sweep is asked to do: AutoML settings under TAO's names, the policy (search or plain
training) and the per-action profiles (train, distill, quantize)."""

from automl.settings.tao_settings import AutomlSettings, parse_setting_args, parse_settings

__all__ = ["AutomlSettings", "parse_setting_args", "parse_settings"]
