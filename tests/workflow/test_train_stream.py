"""Streamed training from an ERA5 store: a curriculum with a cosine learning rate, a held-out
validation range, checkpoints with the data position, and a resume that continues exactly."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import xarray as xr

from graphcast_zero import synthetic, workflow
from graphcast_zero.errors import InputError
from graphcast_zero.paths import DataPaths
from graphcast_zero.sources import era5_plan
from graphcast_zero.sources.era5_convert import convert, read_dataset
from graphcast_zero.sources.layouts import WEATHERBENCH2
from graphcast_zero.workflow import train_session

from ..conftest import OFFICIAL

# 6-hourly, 13 levels, on a 12° grid: 2022-01-01T00 … 2022-01-03T18.
STORE = dict(start="2022-01-01T00", hours=72, resolution=12.0)
TINY = workflow.RandomModel(mesh_size=1, latent_size=8, gnn_msg_steps=1)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store")
    return synthetic.write_era5_store(folder / "wb2.zarr", WEATHERBENCH2, **STORE)


def data_folder(root) -> DataPaths:
    shutil.copytree(OFFICIAL / "stats", root / "stats")
    return DataPaths(root)


def era5(store, **changes) -> workflow.Era5Training:
    options = dict(init_start="2022-01-01T06", init_end="2022-01-02T00", store=str(store),
                   resolution=12.0, validation_start="2022-01-02T12",
                   validation_end="2022-01-02T18")  # fmt: skip
    return workflow.Era5Training(**{**options, **changes})


PLAN = workflow.PlanOptions(steps_schedule="1:2,2:2", lr_schedule="cosine", warmup_iterations=1)


def train(paths, store, output, **options):
    settings = dict(random=True, random_model=TINY, era5=era5(store), plan=PLAN,
                    cadence=workflow.Cadence(checkpoint_every=2, validate_every=2),
                    precision="float32", output=output, progress=False, log=lambda _: None)  # fmt: skip
    return workflow.run_training(paths, **{**settings, **options})


def test_a_window_read_in_memory_equals_the_fetched_dataset(store, tmp_path):
    opened = xr.open_zarr(store, chunks=None)
    request = era5_plan.Era5Request(
        era5_plan.pd.Timestamp("2022-01-01T12"), 2, 12.0, tuple(TINY.task_config().pressure_levels)
    )
    plan = era5_plan.plan_conversion(opened, WEATHERBENCH2, str(store), request)
    written = xr.load_dataset(convert(opened, plan, tmp_path / "w.nc", progress=False))
    xr.testing.assert_identical(read_dataset(opened, plan), written)


@pytest.mark.slow
def test_streamed_training_resumes_exactly(store, tmp_path, compile_cache, monkeypatch):
    whole = train(data_folder(tmp_path / "a"), store, tmp_path / "a" / "run" / "params.npz")
    assert whole.iterations_done == 4 and len(whole.losses) == 4
    record = json.loads((tmp_path / "a" / "run" / "training.json").read_text())
    assert record["plan"]["schedule"] == "1:2,2:2" and record["data"]["source"] == "era5"
    # Validation every 2 iterations, at the step count of the phase just trained.
    assert [(v["iteration"], v["steps"], v["windows"]) for v in record["validation"]] == [
        (2, 1, 2), (4, 2, 2)
    ]  # fmt: skip
    assert 0 <= record["data_wait"]["fraction"] <= 1 and record["data_position"]["phase"] == 1

    # The same run, killed after iteration 3: its last checkpoint is iteration 2's.
    paths = data_folder(tmp_path / "b")
    output = tmp_path / "b" / "run" / "params.npz"
    original = train_session.TrainingSession.after_iteration

    def killed_at_3(self, state):
        original(self, state)
        if state.iteration == 3:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(train_session.TrainingSession, "after_iteration", killed_at_3)
        with pytest.raises(KeyboardInterrupt):
            train(paths, store, output)
    saved = json.loads((tmp_path / "b" / "run" / "training.json").read_text())
    assert saved["iterations"] == 2 and saved["data_position"]["phase"] == 0
    # --resume with only the data options: the plan comes from training.json.
    rest = train(paths, store, output, random=False, plan=None, resume=True)
    assert rest.iterations_done == 4
    # Same process, same compiled steps, same batches: the curve continues bit for bit.
    assert rest.losses == whole.losses[2:]
    resumed = json.loads((tmp_path / "b" / "run" / "training.json").read_text())
    assert resumed["losses"] == whole.losses and resumed["validation"] == record["validation"]
    with np.load(output) as a, np.load(tmp_path / "a" / "run" / "params.npz") as b:
        for key in (k for k in a.files if k.startswith("params:")):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (dict(validation_start="2022-01-01T18", validation_end="2022-01-02T06"), "overlaps"),
        (
            dict(init_end="2022-01-03T12", validation_start=None, validation_end=None),
            "need data until 2022-01-04T00",
        ),
        (dict(init_every="5h"), "not a multiple"),
        (dict(validation_end=""), "--validation-start and --validation-end are both needed"),
        (dict(resolution=None), "--random --source era5 needs --resolution"),
    ],
)
def test_bad_ranges_are_one_line_errors(store, tmp_path, changes, match):
    with pytest.raises(InputError, match=match) as raised:
        train(data_folder(tmp_path), store, tmp_path / "run" / "params.npz",
              era5=era5(store, **changes))  # fmt: skip
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "run").exists()


def test_era5_ranges_need_the_era5_source():
    with pytest.raises(InputError, match="add --source era5"):
        workflow.training_source("dataset", init_start="2022-01-01T00", init_end="")
    with pytest.raises(InputError, match="--source 'gcs'"):
        workflow.training_source("gcs")
