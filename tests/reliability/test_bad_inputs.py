"""Bad inputs across `rtdetr` and `automl` (issue 19): one table, one row per bad input.

Each row is a command line (after the program name), the files it needs (a valid tiny spec with one
thing broken, a damaged file), the exit code and the fragments of the message that must name the key,
file or flag at fault. Every row also asserts: no traceback, and nothing written where the command
would have put its results. The 32 `automl` rows of tests/automl/test_reliability_automl.py run here
too, through that module's own check.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.automl import test_reliability_automl as seed
from tests.conftest import tiny_spec, write_spec
from tests.reliability.table import (
    AUTOML,
    LRR,
    NOPE,
    RTDETR,
    RUN,
    SWEEP,
    TRAIN,
    Row,
    _file,
    _fill,
    _folder,
    _merge,
    _param,
    nan_row,
    param_row,
    setting_row,
    spec_row,
    text_row,
)

ROWS = [
    # unknown keys, close matches (tests/model/spec/test_bad_inputs.py)
    spec_row("unknown-key", {"foo": 1}, ["foo: unknown key"]),
    spec_row("typo-suggestion", {"train": {"optim": {"lrr": 0.001}}}, [LRR]),
    spec_row(
        "misplaced-key", {"train": {"lr": 0.001}}, ["train.lr: unknown key; did you mean train.optim.lr?"]
    ),
    # wrong types
    spec_row(
        "wrong-type",
        {"dataset": {"batch_size": "eight"}},
        ["dataset.batch_size: got 'eight' (str)", "integer"],
    ),
    spec_row("float-for-int", {"train": {"num_epochs": 2.5}}, ["train.num_epochs: got 2.5", "an integer"]),
    spec_row(
        "list-for-mapping",
        {"dataset": {"val_data_sources": [{"image_dir": "a", "json_file": "b"}]}},
        ["dataset.val_data_sources: got", "(list); expected a mapping"],
    ),
    spec_row(
        "mapping-for-list",
        {"model": {"return_interm_indices": {"a": 1}}},
        ["model.return_interm_indices: got", "expected a list"],
    ),
    # out of range, enums
    spec_row(
        "out-of-bounds",
        {"dataset": {"augmentation": {"distortion_prob": 1.5}}},
        ["dataset.augmentation.distortion_prob: got 1.5; allowed range", "<= 1"],
    ),
    spec_row("below-minimum", {"dataset": {"batch_size": 0}}, ["dataset.batch_size: got 0", ">= 1"]),
    spec_row(
        "bad-enum",
        {"train": {"optim": {"lr_scheduler": "Cosine"}}},
        ["train.optim.lr_scheduler: got 'Cosine'; allowed values: MultiStep, StepLR"],
    ),
    spec_row(
        "enum-suggestion",
        {"model": {"backbone": "resnet18"}},
        ["model.backbone: got 'resnet18'", "did you mean resnet_18?"],
    ),
    spec_row(
        "spatial-size",
        {"dataset": {"augmentation": {"eval_spatial_size": [100, 128]}}},
        ["dataset.augmentation.eval_spatial_size: got [100, 128]", "multiples of 32"],
    ),
    # cross-field rules
    spec_row(
        "interm-indices-length",
        {"model": {"return_interm_indices": [2, 3]}},
        ["model.return_interm_indices: has 2 entries", "num_feature_levels is 3"],
    ),
    spec_row(
        "num-select-gt-queries",
        {"model": {"num_select": 300}},
        ["model.num_select: 300 is larger than model.num_queries (20)"],
    ),
    spec_row(
        "validation-interval",
        {"train": {"validation_interval": 5}},
        ["train.validation_interval: 5 is larger than train.num_epochs (2)"],
    ),
    spec_row(
        "checkpoint-interval",
        {"train": {"checkpoint_interval": 9}},
        ["train.checkpoint_interval: 9 is larger than train.num_epochs (2)"],
    ),
    spec_row(
        "eval-class-ids",
        {"dataset": {"num_classes": 3, "eval_class_ids": [1, 3]}},
        ["dataset.eval_class_ids: [3] not below dataset.num_classes (3)"],
    ),
    spec_row("automl-policy", {"automl_policy": "on"}, ["automl_policy is a run argument, not a spec key"]),
    # NaN and inf (tests/model/spec/test_nan_values.py)
    nan_row("nan-bounded", "train.optim.lr=.nan", ["train.optim.lr", "got nan", ">= 0.0 and <= 1.0"]),
    nan_row("nan-lower-bound-only", "model.expansion=.NAN", ["model.expansion", "got nan", ">= 0.0"]),
    nan_row("nan-unbounded", "train.clip_grad_norm=.nan", ["train.clip_grad_norm", "any real number"]),
    nan_row("nan-int-field", "train.num_epochs=.nan", ["train.num_epochs", "got nan (float)", "an integer"]),
    nan_row("nan-list-of-ints", "train.optim.lr_steps=[10, .nan]", ["train.optim.lr_steps[1]", "got nan"]),
    nan_row("nan-shorthand", "learning_rate=.nan", ["train.optim.lr", "got nan"]),
    nan_row("inf-bounded", "train.optim.lr=.inf", ["train.optim.lr", "got inf", "<= 1.0"]),
    spec_row(
        "nan-in-the-file",
        {"train": {"optim": {"weight_decay": float("nan")}}},
        ["train.optim.weight_decay", "got nan"],
    ),
    # missing data and files
    spec_row(
        "missing-data-source",
        {"dataset": {"val_data_sources": {"image_dir": "", "json_file": ""}}},
        ["dataset.val_data_sources.image_dir: required by `rtdetr train` but not set"],
    ),
    spec_row(
        "image-dir-missing",
        {
            "dataset": {
                "train_data_sources": [
                    {"image_dir": "{tmp}/nope", "json_file": "{data}/val/annotations.json"}
                ]
            }
        },
        ["dataset.train_data_sources[0].image_dir", "{tmp}/nope", "does not exist"],
    ),
    spec_row(
        "json-file-missing",
        {
            "dataset": {
                "val_data_sources": {"image_dir": "{data}/val/images.tar.gz", "json_file": "{tmp}/no.json"}
            }
        },
        ["dataset.val_data_sources.json_file", "{tmp}/no.json", "does not exist"],
    ),
    spec_row(
        "evaluate-no-checkpoint",
        {},
        ["evaluate.checkpoint: required by `rtdetr evaluate` but not set"],
        action="evaluate",
    ),
    spec_row(
        "evaluate-checkpoint-missing",
        {},
        ["evaluate.checkpoint", NOPE, "does not exist"],
        f"evaluate.checkpoint={NOPE}",
        action="evaluate",
    ),
    spec_row(
        "export-checkpoint-missing",
        {},
        ["export.checkpoint", NOPE, "does not exist"],
        f"export.checkpoint={NOPE}",
        action="export",
    ),
    spec_row(
        "inference-checkpoint-missing",
        {},
        ["inference.checkpoint", NOPE, "does not exist"],
        f"inference.checkpoint={NOPE}",
        action="inference",
    ),
    spec_row(
        "trt-onnx-missing",
        {},
        ["gen_trt_engine.onnx_file", "/nope/model.onnx", "does not exist"],
        "gen_trt_engine.onnx_file=/nope/model.onnx",
        action="gen_trt_engine",
    ),
    spec_row(
        "resume-not-a-checkpoint",
        {"train": {"resume_training_checkpoint_path": "{tmp}/model.pth"}},
        ["train.resume_training_checkpoint_path", "{tmp}/model.pth"],
    ),
    Row(
        "results-dir-under-a-file",
        RTDETR,
        TRAIN,
        1,
        ["results_dir", "cannot write", "afile"],
        change={"results_dir": "{tmp}/afile/out"},
        setup=_file("afile"),
        absent=["afile/out"],
    ),
    # the spec file itself
    text_row("malformed-yaml", "dataset:\n  batch_size: 4\n    workers: 2\n", ["malformed YAML at line 3"]),
    text_row("unclosed-bracket", "model:\n  feat_strides: [8, 16\n", ["malformed YAML at line"]),
    text_row("not-a-mapping", "- 1\n- 2\n", ["must be a mapping of sections", "list"]),
    text_row("scalar", "just text\n", ["must be a mapping of sections", "str"]),
    text_row("empty-file", "", ["the spec file is empty"]),
    text_row("duplicate-key", "train:\n  num_epochs: 2\n  num_epochs: 3\n", ["duplicate key 'num_epochs'"]),
    Row(
        "spec-file-missing",
        RTDETR,
        ["train", "-e", "{tmp}/nope.yaml"],
        2,
        ["spec file not found", "nope.yaml"],
    ),
    # the command line
    Row("override-not-key-value", RTDETR, [*TRAIN, "train.num_epochs"], 2, ["train.num_epochs", "key=value"]),
    Row("override-typo", RTDETR, [*TRAIN, "train.optim.lrr=0.1"], 2, [LRR]),
    Row(
        "override-index-past-end",
        RTDETR,
        [*TRAIN, "dataset.train_data_sources[3].image_dir=/x"],
        2,
        ["dataset.train_data_sources", "index 3 is past the end"],
    ),
    Row("unknown-action", RTDETR, ["fly", "-e", "{spec}"], 2, ["'fly'", "invalid choice"]),
    Row(
        "parent-missing",
        RTDETR,
        ["evaluate", "-e", "{spec}", "--parent", "{tmp}/nojob"],
        1,
        ["--parent", "{tmp}/nojob", "no such folder"],
    ),
    Row(
        "parent-without-checkpoint",
        RTDETR,
        ["evaluate", "-e", "{spec}", "--parent", "{tmp}/job"],
        1,
        ["--parent", "{tmp}/job", "not a job folder"],
        setup=_folder("job"),
    ),
    Row(
        "checkpoint-without-parent",
        RTDETR,
        ["evaluate", "-e", "{spec}", "--checkpoint", "best"],
        1,
        ["--checkpoint", "give --parent too"],
    ),
    # automl settings (tests/automl/test_settings.py, test_settings_effects.py)
    setting_row(
        "setting-typo",
        "automl_max_recomendations=3",
        ["automl_max_recomendations: unknown AutoML setting; did you mean automl_max_recommendations?"],
    ),
    setting_row("setting-unknown", "zzz=1", ["zzz: unknown AutoML setting; known settings:"]),
    setting_row(
        "setting-below-minimum",
        "automl_max_recommendations=0",
        ["automl_max_recommendations: got 0; expected an integer >= 1"],
    ),
    setting_row(
        "setting-wrong-type", "automl_max_recommendations=ten", ["automl_max_recommendations: got 'ten'"]
    ),
    setting_row(
        "setting-bool",
        "automl_delete_intermediate_ckpt=maybe",
        ["automl_delete_intermediate_ckpt", "'maybe'"],
    ),
    setting_row(
        "setting-enum", "automl_algorithm=bayes", ["automl_algorithm: got 'bayes'", "did you mean bayesian"]
    ),
    setting_row(
        "setting-tao-only", "automl_algorithm=dehb", ["'dehb' is a TAO algorithm this tool does not run"]
    ),
    setting_row("setting-fidelity", "fidelity=sha", ["fidelity: got 'sha'"]),
    setting_row("setting-other-algorithm", "automl_population_size=4", ["applies to automl_algorithm=pbt"]),
    setting_row(
        "setting-refused",
        "automl_checkpoint_retention_strategy=terminal",
        ["automl_checkpoint_retention_strategy"],
    ),
    setting_row("setting-not-key-value", "automl_max_recommendations", ["automl_max_recommendations"]),
    # --param ranges
    param_row("param-unknown-key", "train.optim.lrr=1e-5:1e-3", ["train.optim.lrr"]),
    param_row("param-not-a-range", "train.optim.lr=abc", ["train.optim.lr", "abc"]),
    param_row(
        "param-low-above-high",
        "train.optim.lr=1e-3:1e-5",
        ["train.optim.lr", "range 0.001:1e-05 is empty", "low < high"],
    ),
    param_row("param-no-equals", "train.optim.lr", ["--param", "train.optim.lr"]),
    # the spec `automl run` reads
    Row(
        "automl-spec-automl-policy",
        AUTOML,
        RUN,
        2,
        ["automl_policy is a run argument, not a spec key"],
        change={"automl_policy": "on"},
        absent=SWEEP,
    ),
    Row("automl-spec-typo", AUTOML, RUN, 2, [LRR], change={"train": {"optim": {"lrr": 0.1}}}, absent=SWEEP),
    Row("automl-unknown-action", AUTOML, ["fly"], 2, ["'fly'"], absent=[]),
    Row(
        "automl-status-no-folder",
        AUTOML,
        ["status", "{tmp}/nope"],
        2,
        ["{tmp}/nope", "summary.json"],
        absent=[],
    ),
    Row(
        "automl-best-no-folder", AUTOML, ["best", "{tmp}/nope"], 2, ["{tmp}/nope", "summary.json"], absent=[]
    ),
]


@pytest.mark.parametrize("row", [_param(r) for r in ROWS])
def test_a_bad_input_is_refused_clearly(row: Row, synthetic_data: Path, tmp_path: Path) -> None:
    names = {"tmp": tmp_path, "data": synthetic_data, "spec": tmp_path / "spec.yaml"}
    if row.text is not None:
        names["spec"].write_text(row.text)
    else:
        spec = tiny_spec(synthetic_data, tmp_path / "out")
        write_spec(names["spec"], _merge(spec, _fill(row.change, **names)))
    if row.setup is not None:
        row.setup(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", row.prog, *_fill(row.argv, **names)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output[-3000:]
    assert proc.returncode == row.code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    for fragment in _fill(row.fragments, **names):
        assert fragment in proc.stderr, (fragment, proc.stderr[-2000:])
    for path in row.absent:
        assert not (tmp_path / path).exists(), f"{path} was written"


@pytest.fixture(scope="module")
def seed_spec(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("seed")
    return write_spec(folder / "spec.yaml", tiny_spec(synthetic_data, folder / "unused"))


@pytest.mark.parametrize("row", seed.ROWS, ids=[row.id for row in seed.ROWS])
def test_an_automl_seed_row_is_refused_clearly(
    row: seed.Row, seed_spec: Path, tmp_path: Path, root: Path
) -> None:
    """tests/automl/test_reliability_automl.py's rows under its own check (one-line message, no
    traceback, nothing written, a damaged sweep left as it was)."""
    seed.test_a_bad_command_line_gets_one_clear_message(row, seed_spec, tmp_path, root)
