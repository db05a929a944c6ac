"""A worker's forecast task on a window that does not fit the model: the error comes back as the
task's result (Dask would retry a raised one to no purpose)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_zero.checkpoint import load_checkpoint
from graphcast_zero.config import PRESSURE_LEVELS_13
from graphcast_zero.errors import InputError
from graphcast_zero.hindcast import worker
from graphcast_zero.hindcast.campaign import Campaign
from graphcast_zero.hindcast.source import OFFICIAL, SourceSpec
from graphcast_zero.statistics import load_statistics

from ..conftest import FIXTURE_DATASET
from ..conftest import OFFICIAL as OFFICIAL_FIXTURE


def one_init(output, steps: int = 1, precision: str = "float32") -> Campaign:
    """A campaign of the fixture file's first initialisation, keeping 2 m temperature."""
    spec = SourceSpec(str(FIXTURE_DATASET), None, OFFICIAL, 4.0, PRESSURE_LEVELS_13)
    return Campaign(
        pd.DatetimeIndex(["2022-01-01T06"]), steps, ("2m_temperature",), (), spec, output,
        precision,
    )  # fmt: skip


def fixture_bundle(key: str) -> worker.ModelBundle:
    """The fixtures' random GraphCast_small checkpoint and statistics, cached as ``key``."""
    checkpoint = load_checkpoint(OFFICIAL_FIXTURE / "params" / "random_small.npz")
    return worker.ModelBundle(key, checkpoint, load_statistics(OFFICIAL_FIXTURE / "stats"))


def test_a_window_with_nan_inputs_returns_its_error(tmp_path):
    plan = one_init(tmp_path / "never.zarr", steps=2, precision="auto")
    bundle = fixture_bundle("key")
    window = worker.load_window(plan, 0)
    broken = window.copy(deep=True)
    broken["2m_temperature"][0, 1, 3, 4] = np.nan  # the last input frame
    result = worker.forecast_window(plan, bundle, None, 0, broken)
    assert isinstance(result.error, InputError)
    assert "2m_temperature has 1 NaN/inf values" in str(result.error)
    assert not (tmp_path / "never.zarr").exists()  # nothing was written
    assert isinstance(window, xr.Dataset) and window.sizes["time"] == 4


def test_a_worker_builds_the_predictor_once_per_checkpoint_and_grid(tmp_path):
    plan = one_init(tmp_path)
    checkpoint = load_checkpoint(OFFICIAL_FIXTURE / "params" / "random_small.npz")
    statistics = load_statistics(OFFICIAL_FIXTURE / "stats")
    lat, lon = np.linspace(-90, 90, 46), np.arange(90) * 4.0
    first = worker.prepared_model(plan, worker.ModelBundle("a", checkpoint, statistics), lat, lon)
    again = worker.prepared_model(plan, worker.ModelBundle("a", checkpoint, statistics), lat, lon)
    assert again is first  # the same predictor and compiled program: no second compile
    other = worker.prepared_model(plan, worker.ModelBundle("b", checkpoint, statistics), lat, lon)
    assert other is not first and other.predictor.lat.size == 46


def test_the_first_forecast_chooses_the_memory_plan_and_the_worker_keeps_it(tmp_path):
    plan, bundle = one_init(tmp_path), fixture_bundle("plan")
    window = worker.load_window(plan, 0)
    lat, lon = window["lat"].values, window["lon"].values
    model = worker.prepared_model(plan, bundle, lat, lon)
    assert model.memory is None
    _, (predictions, _, _) = worker._forecast(plan, bundle, window)
    assert predictions.sizes["time"] == 1
    planned = worker.prepared_model(plan, bundle, lat, lon)
    # A 4,140-node grid is one chunk: the plan is given, and the compiled program is kept.
    assert planned.memory["grid_chunks"] == 1 and planned.memory["how_chosen"] == "given"
    assert planned.program is model.program


def test_a_measured_plan_is_forecast_with_the_program_the_planner_compiled(tmp_path, monkeypatch):
    import jax

    from graphcast_zero import memory

    monkeypatch.setattr(memory, "CHUNK_NODES", 1024)  # 4,140 grid nodes: whole, or 5 chunks
    plan, bundle = one_init(tmp_path), fixture_bundle("measured")
    window = worker.load_window(plan, 0)
    model, (first, _, _) = worker._forecast(plan, bundle, window)
    assert model.memory["how_chosen"] == "fits" and model.memory["grid_chunks"] == 1
    assert isinstance(model.program.run, jax.stages.Compiled)  # not compiled a second time
    again, (second, _, _) = worker._forecast(plan, bundle, window)
    assert again is model
    np.testing.assert_array_equal(second["2m_temperature"], first["2m_temperature"])
    assert np.isfinite(first["2m_temperature"].values).all()
