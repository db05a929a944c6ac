"""``invoke hindcast``: forecast every initialisation of a range into one store, scored as it goes.

The steps, in order: check the options, the model and the source (first and last windows) before
anything starts; take the store's lock; create the store (or check that an existing one was made
by the same campaign and read which forecasts it holds); start or join the Dask cluster; compute
the climatology if one is needed and the store has none; forecast what is missing, with a
progress bar over initialisations; write the report files; release the lock.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from graphcast_zero import evaluation, validation
from graphcast_zero.checkpoint import Checkpoint, load_checkpoint
from graphcast_zero.errors import InputError
from graphcast_zero.hindcast import climatology as clim
from graphcast_zero.hindcast import engine, reports, source, store, worker
from graphcast_zero.hindcast.campaign import (
    Campaign,
    HindcastOptions,
    chosen_levels,
    chosen_variables,
    init_times,
    positive_steps,
)
from graphcast_zero.hindcast.lock import HEARTBEAT_S, STALE_AFTER_S, StoreLock
from graphcast_zero.paths import DataPaths
from graphcast_zero.predictor import AUTO, PRECISIONS
from graphcast_zero.workflow.choosing import choose_params
from graphcast_zero.workflow.inputs import load_checked_statistics
from graphcast_zero.workflow.options import Log
from graphcast_zero.workflow.run_info import package_versions


@dataclasses.dataclass(frozen=True)
class HindcastResult:
    """What a hindcast run did.

    Attributes:
      store: the Zarr store.
      reports: the folder of report files.
      total: initialisations in the campaign.
      skipped: those already complete when this run started.
      results: the forecasts this run made, in the order they finished.
      metrics: the campaign's scores (None when nothing has a truth).
      files: the report files written.
      forecast_s: wall time of the forecasting phase (cluster start included).
    """

    store: Path
    reports: Path
    total: int
    skipped: int
    results: list[worker.InitResult]
    metrics: Optional[evaluation.Evaluation]
    files: list[Path]
    forecast_s: float


def _per_hour(count: int, seconds: float) -> Optional[float]:
    """Initialisations per hour (None when none were forecast)."""
    return count * 3600.0 / seconds if count and seconds > 0 else None


def run_hindcast(
    paths: DataPaths,
    options: HindcastOptions,
    *,
    log: Log = print,
    progress: bool = True,
    on_result: Optional[Callable[[worker.InitResult], None]] = None,
    heartbeat_s: float = HEARTBEAT_S,
    stale_after_s: float = STALE_AFTER_S,
) -> HindcastResult:
    """Runs (or resumes) a hindcast campaign; returns what it did.

    Args:
      paths: the data folder (checkpoint, statistics and output defaults, caches).
      options: the campaign.
      log: where messages go.
      progress: show progress bars.
      on_result: called with each forecast's result as it finishes.
      heartbeat_s, stale_after_s: the store lock's heartbeat period and stale age.

    Raises:
      InputError: bad options, a source that does not cover the campaign, a store that holds
        another campaign or is locked by one.
      FetchError: the source or the Dask scheduler cannot be reached.
    """
    plan = _plan(paths, options)
    campaign = plan.campaign
    inits, output = campaign.inits, campaign.output
    log(
        f"Hindcast of {len(inits)} initialisations, {inits[0]:%Y-%m-%dT%H} … "
        f"{inits[-1]:%Y-%m-%dT%H} every {options.every}, {campaign.steps} steps each, from "
        f"{campaign.source.describe()}, into {output}"
    )
    lock = StoreLock(output / store.GROUP, output, heartbeat_s, stale_after_s)
    lock.acquire(break_stale=options.break_lock)
    try:
        todo = _open_or_create(plan, options)
        log(f"  {len(inits) - len(todo)} already complete, {len(todo)} to forecast")
        started = time.perf_counter()
        results = []
        if todo:
            with engine.dask_client(options.scheduler, options.workers, log) as client:
                climatology = _climatology(client, plan, options, log, progress)
                results = _forecast(client, plan, climatology, todo, progress, on_result)
        forecast_s = time.perf_counter() - started
        record = _record(plan, options, results, forecast_s)
        metrics, files = reports.write_reports(output, campaign.levels, record)
    finally:
        lock.release()
    folder = reports.reports_folder(output)
    _log_summary(log, output, folder, results, forecast_s, metrics)
    return HindcastResult(
        output, folder, len(inits), len(inits) - len(todo), results, metrics, files, forecast_s
    )


@dataclasses.dataclass(frozen=True)
class _Plan:
    """The campaign and what it was resolved from, before anything is written."""

    campaign: Campaign
    checkpoint: Checkpoint
    params_path: Path
    stats_dir: Path
    digest: str  # the checkpoint file's SHA-256
    lat: np.ndarray
    lon: np.ndarray


def _plan(paths: DataPaths, options: HindcastOptions) -> _Plan:
    """Checks every option, the model and the source; resolves the campaign."""
    inits = init_times(options.init_start, options.init_end, options.every)
    steps = positive_steps(options.steps)
    precision = _precision(options.precision)
    if options.workers is not None and int(options.workers) < 1:
        raise InputError(f"--workers must be at least 1, not {options.workers}")
    params_path = choose_params(paths, options.params)
    checkpoint = load_checkpoint(params_path)
    task = checkpoint.task_config
    _, stats_dir = load_checked_statistics(paths, options.stats_dir, task)
    variables = chosen_variables(options.variables, task)
    levels = chosen_levels(options.levels, task, variables)
    spec = source.resolve_source(
        options.store, options.endpoint, inits, steps, _resolution(options.resolution, checkpoint),
        tuple(task.pressure_levels),
    )  # fmt: skip
    if spec.kind == source.OFFICIAL:  # an ERA5 store is read on the model's grid and levels
        dataset = source.opened(spec)[0]
        # resolve_source has checked the levels.
        validation.check_grid(dataset, checkpoint.model_config, spec.uri)
        validation.check_variables(dataset, task, spec.uri)
    lat, lon = source.grid(spec)
    campaign = Campaign(
        inits=inits, steps=steps, variables=variables, levels=levels, source=spec,
        output=_output_path(paths, options.output, inits), precision=precision,
        graphs_folder=str(paths.cache / "graphs"), compile_folder=str(paths.cache / "jax"),
    )  # fmt: skip
    digest = _file_digest(params_path)
    return _Plan(
        campaign, checkpoint, params_path.absolute(), stats_dir.absolute(), digest, lat, lon
    )


def _precision(precision: str) -> str:
    """``--precision`` checked by name; ``auto`` is resolved on each worker, for its device."""
    if precision not in (AUTO, *PRECISIONS):
        raise InputError(f"--precision must be one of auto, bfloat16, float32, not {precision!r}")
    return precision


def _resolution(resolution: Optional[float], checkpoint: Checkpoint) -> Optional[float]:
    """The grid: the model's, or ``--resolution`` for a model that fits any grid."""
    trained = checkpoint.model_config.resolution
    if resolution and trained and abs(float(resolution) - trained) > 1e-9:
        raise InputError(
            f"--resolution {resolution} differs from the model's {trained}°: drop --resolution"
        )
    return float(resolution or trained) or None


def _output_path(paths: DataPaths, output: Optional[str], inits: pd.DatetimeIndex) -> Path:
    if output:
        path = Path(output).expanduser().absolute()
    else:
        name = f"hindcast-{inits[0]:%Y%m%dT%H}-{inits[-1]:%Y%m%dT%H}.zarr"
        path = paths.outputs / name
    if path.exists() and not path.is_dir():
        raise InputError(f"--output {path} is a file: name a Zarr folder (e.g. hindcast.zarr)")
    validation.check_writable_folder(path.parent)
    return path


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fingerprint(plan: _Plan, options: HindcastOptions) -> dict:
    """What makes two runs the same campaign, so one may resume the other's store."""
    campaign = plan.campaign
    inits = campaign.inits
    return {
        "inits": [f"{inits[0]:%Y-%m-%dT%H:%M}", f"{inits[-1]:%Y-%m-%dT%H:%M}", len(inits)],
        "steps": campaign.steps,
        "variables": list(campaign.variables),
        "levels": list(campaign.levels),
        "grid": [len(plan.lat), len(plan.lon)],
        "checkpoint_sha256": plan.digest,
        "source": campaign.source.uri,
        "precision": campaign.precision,
        "climatology": options.climatology or f"computed {options.climatology_period or ''}",
    }


def _attributes(plan: _Plan, options: HindcastOptions) -> dict:
    """The store's metadata: checkpoint, data source, package version and the campaign."""
    campaign, checkpoint = plan.campaign, plan.checkpoint
    inits = campaign.inits
    return {
        "description": (
            f"GraphCast hindcast: {len(inits)} forecasts initialised {inits[0]:%Y-%m-%dT%H} … "
            f"{inits[-1]:%Y-%m-%dT%H} every {options.every}, {campaign.steps} steps of 6 h"
        ),
        "checkpoint": plan.params_path.name,
        "checkpoint_sha256": plan.digest,
        "checkpoint_description": checkpoint.description or "",
        "model_config": json.dumps(dataclasses.asdict(checkpoint.model_config)),
        "task_config": json.dumps(dataclasses.asdict(checkpoint.task_config)),
        "data_source": campaign.source.uri,
        "data_source_kind": campaign.source.kind,
        "data_source_endpoint": campaign.source.endpoint or "",
        "package": "graphcast-zero",
        "package_version": package_versions().get("graphcast-zero", "unknown"),
        "precision": campaign.precision,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _open_or_create(plan: _Plan, options: HindcastOptions) -> list[int]:
    """Checks an existing store against the campaign, or creates it; returns the store indices
    of the initialisations still to forecast."""
    campaign = plan.campaign
    output = campaign.output
    fingerprint = _fingerprint(plan, options)
    if store.is_store(output):
        store.check_fingerprint(output, fingerprint)
    else:
        strays = (
            [p.name for p in output.iterdir() if p.name != store.GROUP] if output.exists() else []
        )
        if strays:
            raise InputError(
                f"--output {output} is a folder with other files ({strays[0]}, …): choose a new name"
            )
        template = store.forecast_template(
            campaign.inits.values, campaign.lead_times, campaign.variables, campaign.levels,
            plan.lat, plan.lon,
        )  # fmt: skip
        store.create_store(output, template, fingerprint, _attributes(plan, options))
    return [int(i) for i in np.flatnonzero(~store.completed(output))]


def _climatology(client, plan: _Plan, options: HindcastOptions, log, progress):
    """The climatology's spec: the store given, or the one computed into the hindcast store."""
    campaign, lat, lon = plan.campaign, plan.lat, plan.lon
    if options.climatology:
        spec = clim.ClimatologySpec(
            options.climatology, None, options.endpoint, f"the store {options.climatology}"
        )
        clim.check_climatology(spec, campaign, lat, lon)
        return spec
    if not clim.has_computed(campaign.output):
        data_end = source.last_time(campaign.source)
        frames = clim.period_frames(options.climatology_period, campaign, data_end)
        planned = clim.blocks(frames)
        for first, count in (planned[0], planned[-1]):
            source.plan_frames(campaign.source, first, count)  # covered, or a one-line error
        description = (
            f"hour-of-day means of {len(frames)} 6-hourly frames {frames[0]:%Y-%m-%dT%H} … "
            f"{frames[-1]:%Y-%m-%dT%H} of {campaign.source.uri}"
        )
        log(f"  climatology: {description}")
        from tqdm.auto import tqdm

        with tqdm(total=len(frames), unit="frame", desc="climatology", disable=not progress) as bar:
            means = engine.compute_climatology(client, campaign, frames, on_block=bar.update)
        clim.write_computed(campaign.output, means, description)
    spec = clim.computed_spec(campaign.output)
    clim.check_climatology(spec, campaign, lat, lon)
    return spec


def _forecast(client, plan: _Plan, climatology, todo, progress, on_result) -> list:
    from tqdm.auto import tqdm

    campaign = plan.campaign
    model = engine.ModelFiles(str(plan.params_path), str(plan.stats_dir), plan.digest)
    total = len(campaign.inits)
    results = []
    with tqdm(
        total=total, initial=total - len(todo), unit="init", desc="hindcast", disable=not progress
    ) as bar:
        for result in engine.forecast_all(client, campaign, model, climatology, todo):
            results.append(result)
            bar.update(1)
            bar.set_postfix_str(f"{result.init:%Y-%m-%dT%H} in {result.seconds:.1f} s")
            if on_result is not None:
                on_result(result)
    return results


def _record(plan: _Plan, options: HindcastOptions, results, forecast_s: float) -> dict:
    """``hindcast.json``: the options, inputs, this run's work and throughput, versions."""
    count = len(results)
    return {
        "options": dataclasses.asdict(options),
        "source": plan.campaign.source.describe(),
        "checkpoint": str(plan.params_path),
        "checkpoint_sha256": plan.digest,
        "this_run": {
            "forecasts": count,
            "wall_s": forecast_s,
            "inits_per_hour": _per_hour(count, forecast_s),
            "mean_forecast_s": float(np.mean([r.seconds for r in results])) if count else None,
            "workers": sorted({r.worker for r in results}),
            "devices": sorted({r.device for r in results}),
        },
        "versions": package_versions(),
        "host_cpus": os.cpu_count(),
    }


def _log_summary(log, output, folder, results, forecast_s, metrics) -> None:
    rate = _per_hour(len(results), forecast_s)
    if rate is not None:
        log(f"Forecast {len(results)} initialisations in {forecast_s:.0f} s ({rate:.0f} per hour)")
    log(f"Store: {output}")
    log(f"Scores and chart: {folder}")
    if metrics is None:
        log("  no forecast has a truth to score yet")
