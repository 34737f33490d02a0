"""Forward hooks that keep the latest output of the modules the bindings name.

A binding names a module of the network by its ``named_modules()`` name (``backbone``,
``encoder``, ``encoder.fpn_blocks.0``, ``decoder.input_proj.1``...; TAO's ``model.`` prefix is
accepted) or one of TAO's two feature-map names: ``srcs``, the encoder's output maps (the
module ``encoder``), and ``dsrcs``, the decoder's input projections of them (the modules
``decoder.input_proj.<i>``, one per level).
"""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn

from model.errors import ConfigError

__all__ = ["ModuleTaps", "check_names", "valid_names"]


def _feature_map_modules(net: nn.Module, name: str) -> list[str]:
    if name == "srcs":
        return ["encoder"]
    if name == "dsrcs":
        count = len(getattr(getattr(net, "decoder", None), "input_proj", []))
        return [f"decoder.input_proj.{i}" for i in range(count)]
    return [name]


def valid_names(net: nn.Module) -> list[str]:
    return ["srcs", "dsrcs", *(name for name, _ in net.named_modules() if name)]


def check_names(net: nn.Module, names: list[tuple[str, str]], role: str) -> None:
    """Raise ConfigError for every ``(key, name)`` that names no module of ``net``."""
    known = set(valid_names(net))
    problems = []
    for key, name in names:
        if name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        problems.append(f"{key}: {name!r} is not a module of the {role}{hint}")
    if problems:
        top = [n for n in valid_names(net) if n.count(".") <= 1]
        raise ConfigError(
            "; ".join(problems)
            + f". Valid names are srcs, dsrcs and any name of the {role}'s named_modules(), e.g. "
            + ", ".join(top[:40])
            + (" ..." if len(top) > 40 else "")
        )


class ModuleTaps:
    """Keeps the last output of each named module of ``net``; ``get(name)`` returns it (a list of
    per-level maps for ``dsrcs``). ``clear()`` drops the stored outputs; ``remove()`` the hooks."""

    def __init__(self, net: nn.Module, names: list[str]):
        self.net = net
        self.outputs: dict[str, Any] = {}
        self._handles: list[Any] = []
        modules = dict(net.named_modules())
        wanted: list[str] = []
        for name in names:
            for module_name in _feature_map_modules(net, name):
                if module_name not in wanted:
                    wanted.append(module_name)
        for module_name in wanted:
            self._handles.append(modules[module_name].register_forward_hook(self._keeper(module_name)))

    def _keeper(self, module_name: str) -> Any:
        def keep(module: nn.Module, inputs: Any, output: Any) -> None:
            self.outputs[module_name] = output

        return keep

    def get(self, name: str) -> Any:
        parts = _feature_map_modules(self.net, name)
        missing = [p for p in parts if p not in self.outputs]
        if missing:
            raise RuntimeError(f"module(s) {missing} did not run in the last forward pass")
        if name == "dsrcs":
            return [self.outputs[p] for p in parts]
        return self.outputs[parts[0]]

    def clear(self) -> None:
        self.outputs.clear()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
