"""The surrogate a replayed trial trains on: the learning curve of any configuration of the space,
predicted from the curve table by its nearest measured neighbours, with the measured seed noise.

Distance is measured in the normalised space: each numeric parameter on its own scale in [0, 1]
(log, power of k, multiple of k, as the sampler draws it), each categorical one 0 when equal and 1
when not; the distance is the root mean square over the parameters. The prediction is the
inverse-distance weighted mean of the ``k`` nearest configurations' mean curves (a measured
configuration is its own curve). Each simulated run then adds a per-run offset and per-epoch noise
drawn with the standard deviations measured between the table's seeds.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Any

from automl.replay.curves import Configuration, CurveTable
from automl.space.params import SearchParam
from automl.space.sampling import unit_position

__all__ = ["Prediction", "Surrogate"]


@dataclass(frozen=True)
class Prediction:
    values: tuple[float, ...]  # the noise-free metric after each epoch 1..max_epochs
    seconds: tuple[float, ...]  # seconds since the run started at the end of each epoch

    def epoch_seconds(self, epoch: int) -> float:
        """How long epoch ``epoch`` (1-based) takes; the first one includes the start-up."""
        return self.seconds[epoch - 1] - (self.seconds[epoch - 2] if epoch > 1 else 0.0)

    @property
    def start_up(self) -> float:
        """Seconds before the first epoch's training (process start, model build, data)."""
        if len(self.seconds) < 2:
            return 0.0
        per_epoch = (self.seconds[-1] - self.seconds[0]) / (len(self.seconds) - 1)
        return max(0.0, self.seconds[0] - per_epoch)


class Surrogate:
    def __init__(self, table: CurveTable, k: int = 3):
        self.table = table
        self.k = max(1, k)
        self.params: list[SearchParam] = list(table.space.params)
        self._points = [(self._position(c.params), c) for c in table.configurations]
        self._cache: dict[str, Prediction] = {}

    def _position(self, params: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        for param in self.params:
            value = params[param.name]
            if param.kind == "categorical" or param.low is None or param.high is None:
                out.append(value)
            else:
                out.append(unit_position(param, value))
        return out

    def distance(self, a: list[Any], b: list[Any]) -> float:
        if not self.params:
            return 0.0
        total = 0.0
        for param, x, y in zip(self.params, a, b, strict=True):
            if param.kind == "categorical" or param.low is None or param.high is None:
                total += 0.0 if x == y else 1.0
            else:
                total += (float(x) - float(y)) ** 2
        return math.sqrt(total / len(self.params))

    def predict(self, params: dict[str, Any]) -> Prediction:
        """The noise-free curve of ``params`` (every parameter of the space named)."""
        key = json.dumps(params, sort_keys=True, default=str)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        here = self._position(params)
        ranked = sorted(((self.distance(here, p), c) for p, c in self._points), key=lambda dc: dc[0])
        nearest: list[tuple[float, Configuration]] = ranked[: self.k]
        if nearest[0][0] < 1e-9:
            weights = [1.0] + [0.0] * (len(nearest) - 1)
        else:
            weights = [1.0 / d for d, _ in nearest]
        total = sum(weights)
        epochs = self.table.max_epochs
        values = tuple(
            sum(w * c.values[i] for w, (_, c) in zip(weights, nearest)) / total for i in range(epochs)
        )
        seconds = tuple(
            sum(w * c.seconds[i] for w, (_, c) in zip(weights, nearest)) / total for i in range(epochs)
        )
        prediction = Prediction(values, seconds)
        self._cache[key] = prediction
        return prediction

    def noise(self, rng: random.Random) -> tuple[float, float]:
        """One run's draw: (its offset, the per-epoch standard deviation)."""
        offset_std, epoch_std = self.table.noise
        return rng.gauss(0.0, offset_std) if offset_std > 0 else 0.0, epoch_std

    def observe(self, true_value: float, offset: float, epoch_std: float, rng: random.Random) -> float:
        """What a run reports for a noise-free ``true_value``: clipped to [0, 1] as mAP is."""
        value = true_value + offset + (rng.gauss(0.0, epoch_std) if epoch_std > 0 else 0.0)
        return min(1.0, max(0.0, value))
