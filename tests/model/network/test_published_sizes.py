"""The presets in configs/ build the published RT-DETRv2 models: parameters and FLOPs at 640x640."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from model import build_model

CONFIGS = Path(__file__).resolve().parents[3] / "configs"

# (params in millions, GFLOPs = 2 x multiply-adds, all decoder layers), measured on the official modules.
PUBLISHED = {
    "rtdetr_r18": (20.18, 61.0),
    "rtdetr_r34": (31.44, 93.1),
    "rtdetr_r50m": (36.59, 105.6),
    "rtdetr_r50": (42.89, 137.1),
    "rtdetr_r101": (76.56, 259.8),
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow  # 5 full-size forwards at 640x640 on the CPU: about 30 s
@pytest.mark.parametrize("preset", sorted(PUBLISHED))
def test_preset_matches_published_params_and_flops(preset: str) -> None:
    params_m, gflops = PUBLISHED[preset]
    spec = yaml.safe_load((CONFIGS / f"{preset}.yaml").read_text())
    model = build_model(spec).eval()
    model.decoder.decoder.eval_idx = model.decoder.decoder.num_layers - 1  # count every decoder layer
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, 3, 640, 640))
    measured = counter.get_total_flops() / 1e9
    assert n_params == pytest.approx(params_m, rel=0.005)
    assert measured == pytest.approx(gflops, rel=0.02)
