"""What a Dask worker does: read a window, forecast it, score it, write it into the store.

Each initialisation is two tasks: :func:`load_window` reads its frames from the source, and
:func:`forecast_window` forecasts them, scores the forecast and writes both into the store's
region for that initialisation, ``complete`` last. A worker runs two threads: while one forecasts,
the other reads the next window (the scheduler runs forecast tasks first, so a worker reads ahead
by about one window). One forecast runs at a time per process (:data:`_FORECASTING`), so the
second thread never competes with the first for the accelerator.

The model is built once per worker process: the checkpoint and statistics are read once by a task
(:func:`load_bundle`, a :class:`ModelBundle` Dask hands to every forecast), and
:func:`prepared_model` keeps the
predictor, its parameters on the device and its compiled rollout per bundle and grid, so every
later forecast reuses the compiled program.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_zero import validation
from graphcast_zero.checkpoint import Checkpoint
from graphcast_zero.errors import GraphCastZeroError
from graphcast_zero.hindcast import climatology as climatology_module
from graphcast_zero.hindcast import scores as scores_module
from graphcast_zero.hindcast import source, store
from graphcast_zero.hindcast.campaign import Campaign
from graphcast_zero.statistics import Statistics

if TYPE_CHECKING:
    from graphcast_zero.forecast import Window

_FORECASTING = threading.Lock()  # one forecast at a time per worker process
_PREPARED: dict[tuple, PreparedModel] = {}


@dataclasses.dataclass(frozen=True, eq=False)
class ModelBundle:
    """The model as the workers get it: checkpoint and statistics in memory.

    Attributes:
      key: identifies the checkpoint (a digest of its file), for the per-process cache.
      checkpoint: the loaded checkpoint.
      statistics: the loaded statistics.
    """

    key: str
    checkpoint: Checkpoint
    statistics: Statistics


@dataclasses.dataclass(frozen=True, eq=False)
class PreparedModel:
    """A predictor built and compiled on one worker, reused by every forecast there.

    ``memory`` is the memory plan chosen for the campaign's window shapes (``run.json``'s
    ``memory`` record), None until the first forecast chooses it.
    """

    predictor: object
    params: object
    program: object
    device: str
    memory: Optional[dict] = None


@dataclasses.dataclass(frozen=True)
class InitResult:
    """What one forecast task reports back.

    Attributes:
      index: the initialisation's position on the store's ``time`` axis.
      init: the initialisation time.
      seconds: forecast, scoring and writing time (the window's reading is not included).
      scored_steps: lead times that had a truth.
      worker: the host and process that made it.
      device: the device kind it ran on.
      error: why the window could not be forecast (a NaN input, say), when it could not: returned
        rather than raised, so Dask does not retry what would fail again.
    """

    index: int
    init: pd.Timestamp
    seconds: float
    scored_steps: int
    worker: str
    device: str
    error: Optional[GraphCastZeroError] = None


def load_bundle(params: str, stats_dir: str, key: str) -> ModelBundle:
    """Task: the checkpoint and statistics, read by a worker (from a filesystem the workers
    share with the client); Dask copies the result to the other workers and reads it again if
    every copy is lost with its worker."""
    from graphcast_zero.checkpoint import load_checkpoint
    from graphcast_zero.statistics import load_statistics

    return ModelBundle(key, load_checkpoint(params), load_statistics(stats_dir))


def load_window(campaign: Campaign, index: int) -> xr.Dataset:
    """Task: the official-layout frames of the initialisation at ``index``, loaded."""
    return source.window(campaign.source, campaign.inits[index], campaign.steps)


def forecast_window(
    campaign: Campaign,
    bundle: ModelBundle,
    climatology: Optional[climatology_module.ClimatologySpec],
    index: int,
    window: xr.Dataset,
) -> InitResult:
    """Task: forecasts the window, scores it and writes both into the store; returns a summary
    (with the error when the window does not fit the model: a missing variable, NaN inputs)."""
    init = campaign.inits[index]
    task = bundle.checkpoint.task_config
    name = f"{campaign.source.uri} at {init:%Y-%m-%dT%H}"
    try:
        scored = validation.check_dataset(
            window, name, bundle.checkpoint.model_config, task, campaign.steps
        )
    except GraphCastZeroError as error:
        return InitResult(index, init, 0.0, 0, _worker_name(), "", error)
    with _FORECASTING:
        started = time.perf_counter()
        model, (predictions, targets, inputs) = _forecast(campaign, bundle, window)
        kept = _kept(predictions, campaign)
        clim = None
        if climatology is not None and scored:
            valid = np.datetime64(init, "ns") + campaign.lead_times[:scored]
            clim = climatology_module.fields_at(
                climatology, valid, campaign.variables, campaign.levels,
                window["lat"].values, window["lon"].values,
            )  # fmt: skip
        scores = scores_module.score_forecast(kept, targets, inputs, scored, clim)
        _write(campaign, index, init, kept, scores)
        seconds = time.perf_counter() - started
        store.mark_complete(campaign.output, index, seconds)
    return InitResult(index, init, seconds, scored, _worker_name(), model.device)


def prepared_model(
    campaign: Campaign, bundle: ModelBundle, lat, lon, frames: Optional[Window] = None
) -> PreparedModel:
    """This process's predictor for the bundle and grid: built and compiled on first use.

    Given a forecast's ``frames``, the model also has its memory plan: chosen for this worker's
    device by the first forecast (as ``run-inference`` chooses it) and kept, since every
    initialisation of a campaign has the same shapes.
    """
    grid = hashlib.sha256(np.asarray(lat, np.float64).tobytes())
    grid.update(np.asarray(lon, np.float64).tobytes())
    key = (bundle.key, campaign.precision, grid.hexdigest())
    if key not in _PREPARED:
        _PREPARED[key] = _prepare(campaign, bundle, lat, lon)
    if frames is not None and _PREPARED[key].memory is None:
        _PREPARED[key] = _with_memory_plan(_PREPARED[key], frames)
    return _PREPARED[key]


def _prepare(campaign: Campaign, bundle: ModelBundle, lat, lon) -> PreparedModel:
    import jax

    from graphcast_zero.graph_cache import assemble_predictor
    from graphcast_zero.predictor import resolve_precision
    from graphcast_zero.rollout import rollout_program
    from graphcast_zero.workflow.compile_cache import use_compilation_cache

    if campaign.compile_folder:
        use_compilation_cache(Path(campaign.compile_folder))
    checkpoint = bundle.checkpoint
    predictor, _ = assemble_predictor(
        checkpoint.model_config, checkpoint.task_config, bundle.statistics, lat, lon,
        precision=resolve_precision(campaign.precision),
        graphs_folder=Path(campaign.graphs_folder) if campaign.graphs_folder else None,
    )  # fmt: skip
    params = jax.tree.map(jax.numpy.asarray, checkpoint.params)
    device = jax.devices()[0]
    kind = f"{device.platform}:{device.device_kind}"
    return PreparedModel(predictor, params, rollout_program(predictor), kind)


def _forecast(campaign: Campaign, bundle: ModelBundle, window: xr.Dataset):
    """(the model, its forecast of ``window``: predictions, targets, inputs)."""
    from graphcast_zero.forecast import forecast_dataset, forecast_window

    frames = forecast_window(window, bundle.checkpoint.task_config, campaign.steps)
    lat, lon = window["lat"].values, window["lon"].values
    model = prepared_model(campaign, bundle, lat, lon, frames)
    # All steps in one compiled call, as run-inference forecasts: the same program, the same
    # numbers.
    return model, forecast_dataset(
        model.predictor, model.params, window, campaign.steps, window=frames,
        program=model.program,
    )  # fmt: skip


def _with_memory_plan(model: PreparedModel, frames: Window) -> PreparedModel:
    """``model`` with the memory plan that fits this worker's device for ``frames``."""
    from graphcast_zero import rollout

    choice, compiled = rollout.choose_memory_plan(
        model.predictor, model.params, frames.input_arrays, frames.forcing_arrays
    )
    if compiled is None and choice.plan == model.predictor.memory:  # the kept program serves
        return dataclasses.replace(model, memory=choice.as_json())
    predictor = dataclasses.replace(model.predictor, memory=choice.plan)
    program = compiled or rollout.rollout_program(predictor)
    return dataclasses.replace(model, predictor=predictor, program=program, memory=choice.as_json())


def _kept(predictions: xr.Dataset, campaign: Campaign) -> xr.Dataset:
    """The variables and levels the campaign keeps."""
    kept = predictions[list(campaign.variables)]
    if "level" in kept.dims:
        kept = kept.sel(level=list(campaign.levels))
    return kept.drop_vars("datetime", errors="ignore")


def as_store_forecast(kept: xr.Dataset, init) -> xr.Dataset:
    """Official-layout predictions (batch 1) in the store's layout: ``time`` is the
    initialisation, ``prediction_timedelta`` the lead time, ``latitude``/``longitude``."""
    renamed = kept.isel(batch=0, drop=True).rename(
        time="prediction_timedelta", lat="latitude", lon="longitude"
    )
    times = np.asarray([np.datetime64(pd.Timestamp(init), "ns")])
    laid_out = renamed.expand_dims(time=times)
    return xr.Dataset(
        {name: laid_out[name].transpose(*store.forecast_dims(name)) for name in laid_out.data_vars}
    )


def _write(campaign: Campaign, index: int, init, kept: xr.Dataset, scores) -> None:
    forecast = as_store_forecast(kept, init)
    store.write_forecast(campaign.output, index, forecast)
    template = store.scores_template(forecast, lazy=False).isel(time=0, drop=True)
    store.write_scores(campaign.output, index, scores_module.store_scores(scores, template, init))


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
