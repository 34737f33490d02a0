"""``automl run --time-budget`` and ``train.time_budget``: plain training (``--policy off``) fits its
schedule to the whole budget, a search's baseline trial to its share, other trials are left to the
search's schedule and deadline, and a continued (PBT / promoted) trial is never refitted."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl.backends.base import Continuation, TrialRequest
from automl.errors import SettingError
from automl.results.summary import SweepSummary
from automl.settings.tao_settings import parse_settings
from automl.space.params import SearchParam, SearchSpace
from automl.sweep.display import SweepDisplay
from automl.sweep.loop import SweepLoop, SweepPlan

SPACE = SearchSpace([SearchParam("train.optim.lr", "float", 1e-3, 1e-4, 1e-2, "log")])


def _loop(
    tmp_path: Path, searched: bool, concurrency: int = 1, action: str = "train", **settings
) -> SweepLoop:
    plan = SweepPlan(
        folder=tmp_path / "sweep",
        base_spec={"train": {"num_epochs": 6, "optim": {"lr": 1e-3}}},
        space=SPACE if searched else None,
        settings=parse_settings({"automl_max_recommendations": 8, "automl_algorithm": "random", **settings}),
        max_epochs=6,
        concurrency=concurrency,
        devices=None,
        action=action,
    )
    (tmp_path / "sweep").mkdir(exist_ok=True)
    summary = SweepSummary(tmp_path / "sweep", {"name": "t", "settings": {}, "config": {}})
    return SweepLoop(plan, summary, SweepDisplay(live=False))


def _budget(loop: SweepLoop, **request) -> str | None:
    spec, _ = loop.trial_spec(TrialRequest(number=0, params={"train.optim.lr": 1e-3}, **request))
    return spec["train"].get("time_budget")


def test_policy_off_fits_plain_training_to_the_whole_budget(tmp_path: Path) -> None:
    loop = _loop(tmp_path, searched=False, time_budget="5m")
    assert _budget(loop) == "300s"
    assert loop.deadline is None  # the trainer ends itself at the deadline; nothing stops it early


def test_the_baseline_gets_its_share_and_searched_trials_none(tmp_path: Path) -> None:
    loop = _loop(tmp_path, searched=True, concurrency=2, time_budget="8m", run_baseline=True)
    assert _budget(loop, baseline=True) == "120s"  # 480 s * 2 slots / 8 trials
    assert _budget(loop) is None
    continued = Continuation(parent=0, checkpoint="x.pth", resume_epoch=2, epochs=4, generation=1)
    assert _budget(loop, baseline=True, continues=continued) is None


def test_baseline_time_share_sets_the_baselines_part(tmp_path: Path) -> None:
    loop = _loop(tmp_path, searched=True, time_budget="10m", run_baseline=True, baseline_time_share=0.6)
    assert _budget(loop, baseline=True) == "360s"
    with pytest.raises(SettingError, match=r"baseline_time_share: got 1.5; expected a fraction"):
        parse_settings({"baseline_time_share": 1.5})


@pytest.mark.parametrize(
    ("searched", "action", "settings"),
    [
        (False, "train", {}),
        (True, "train", {"run_baseline": True}),
        (False, "quantize", {"time_budget": "5m"}),
    ],
)
def test_no_budget_or_no_training_leaves_the_spec_alone(
    tmp_path: Path, searched: bool, action: str, settings: dict
) -> None:
    loop = _loop(tmp_path, searched=searched, action=action, **settings)
    assert _budget(loop, baseline=True) is None


RECIPE_KEYS = [
    "dataset.augmentation.mosaic_prob",
    "dataset.augmentation.mixup_prob",
    "dataset.augmentation.mix_stop_fraction",
    "model.class_loss",
    "model.mal_gamma",
    "train.optim.lr_scheduler",
    "train.optim.flat_fraction",
    "train.optim.min_lr_ratio",
]


def test_the_recipe_keys_are_searchable_but_not_searched_by_default(root: Path) -> None:
    import yaml

    from automl.commands.sweep_inputs import make_space

    schema = root / "schemas" / "train.schema.json"
    spec = yaml.safe_load((root / "references" / "spec_template_train.yaml").read_text(encoding="utf-8"))
    spec["train"]["optim"]["lr_scheduler"] = "FlatCosine"  # flat_fraction / min_lr_ratio matter then
    default = make_space(schema, spec, parse_settings({}), {})
    assert not {p.name for p in default.params} & set(RECIPE_KEYS)  # a default search stays TAO's
    chosen = make_space(schema, spec, parse_settings({"automl_hyperparameters": RECIPE_KEYS}), {})
    params = {p.name: p for p in chosen.params}
    assert set(params) == set(RECIPE_KEYS), chosen
    assert set(params["model.class_loss"].choices) == {"vfl", "mal"}
    assert "FlatCosine" in params["train.optim.lr_scheduler"].choices
    assert (
        params["dataset.augmentation.mosaic_prob"].low,
        params["dataset.augmentation.mosaic_prob"].high,
    ) == (
        0.0,
        1.0,
    )
