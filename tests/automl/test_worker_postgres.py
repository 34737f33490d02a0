"""`automl worker` on a real PostgreSQL database (Optuna's RDB storage).

`.ci/run` installs Debian's postgresql, starts it on localhost, creates the database and exports
AUTOML_TEST_POSTGRES_URL; elsewhere this test skips and says so.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import optuna
import pytest

from tests.automl.test_worker import check_shared_sweep, run_shared_sweep
from tests.conftest import tiny_spec, write_spec

pytestmark = pytest.mark.slow
URL = os.environ.get("AUTOML_TEST_POSTGRES_URL")


@pytest.mark.skipif(
    not URL,
    reason="AUTOML_TEST_POSTGRES_URL is not set: .ci/run starts PostgreSQL on localhost and sets it "
    "(e.g. postgresql://automl:automl@127.0.0.1:5432/automl_test)",
)
def test_two_workers_share_a_postgres_sweep(synthetic_data: Path, tmp_path: Path):
    assert URL is not None
    spec_file = write_spec(
        tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "unused", train={"num_epochs": 1})
    )
    name = f"pg-{uuid.uuid4().hex[:8]}"  # the database outlives the test: a study of its own
    storage = optuna.storages.RDBStorage(URL)
    try:
        outs = run_shared_sweep(spec_file, tmp_path, URL, name)
        check_shared_sweep(URL, storage, name, tmp_path / name, tmp_path / "other", outs)
    finally:
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except KeyError:
            pass
