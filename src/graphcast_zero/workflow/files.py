"""Files of the workflow: choosing inputs, loading and checking them, writing run folders.

Defaults come from the data folder (the newest fitting checkpoint, dataset or run); the three
inputs are cross-checked by :mod:`graphcast_zero.validation` before anything compiles. Results are
written through temporary names and renames, so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import importlib.metadata
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional, Union

import xarray as xr

from graphcast_zero import catalog, data, validation
from graphcast_zero.atomic import atomic_path
from graphcast_zero.checkpoint import Checkpoint, load_checkpoint
from graphcast_zero.config import TaskConfig
from graphcast_zero.errors import InputError
from graphcast_zero.model.graphcast import input_frames
from graphcast_zero.paths import DataPaths
from graphcast_zero.statistics import Statistics, load_statistics

PathLike = Union[str, os.PathLike]
Log = Callable[[str], None]
PREDICTIONS = "predictions.nc"
RUN_INFO = "run.json"
PACKAGES = ("jax", "jaxlib", "dm-haiku", "optax", "xarray", "numpy", "graphcast-zero")


# ------------------------------------------------------------------------------- choosing files


def newest_file(folder: Path, pattern: str, what: str, fix: str) -> Path:
    """The most recently modified file matching ``pattern`` (hidden files skipped)."""
    files = [p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith(".")]
    if not files:
        raise InputError(f"no {what} in {folder}: {fix}")
    return max(files, key=lambda p: (p.stat().st_mtime, p.name))


def choose_params(paths: DataPaths, params: Optional[PathLike]) -> Path:
    """``--params``, else the newest checkpoint in ``<data>/params``."""
    if params:
        return Path(params)
    return newest_file(paths.params, "*.npz", "checkpoint (.npz)", "run `invoke fetch-data`")


def choose_dataset(paths: DataPaths, dataset: Optional[PathLike], ckpt: Checkpoint) -> Path:
    """``--dataset``, else the newest dataset in ``<data>/dataset`` whose name fits the model.

    Files whose names do not follow the bucket's pattern are considered too, after those that fit.
    """
    if dataset:
        return Path(dataset)
    files = sorted(
        (p for p in paths.dataset.glob("*.nc") if not p.name.startswith(".")),
        key=lambda p: (p.stat().st_mtime, p.name),
        reverse=True,
    )
    model = catalog.PublishedModel("checkpoint", "", ckpt.model_config, ckpt.task_config)
    fits, unknown, misfits = [], [], []
    for path in files:
        parsed = catalog.parse_dataset_name(path.name)
        if parsed is None:
            unknown.append(path)
        elif (why := catalog.dataset_misfit(model, parsed)) is None:
            fits.append(path)
        else:
            misfits.append(f"{path.name} has {why}")
    if fits or unknown:
        return (fits + unknown)[0]
    found = f" ({misfits[0]})" if misfits else ""
    raise InputError(
        f"no dataset in {paths.dataset} fits the checkpoint{found}: fetch one "
        f"{validation.LIST_HINT} or pass --dataset"
    )


def newest_run(paths: DataPaths, marker: str = PREDICTIONS) -> Path:
    """The newest run folder under ``<data>/outputs`` holding ``marker``."""
    runs = [
        p.parent for p in paths.outputs.glob(f"*/{marker}") if not p.parent.name.startswith(".")
    ]
    if not runs:
        raise InputError(
            f"no run with {marker} in {paths.outputs}: run `invoke run-inference` first"
        )
    return max(runs, key=lambda p: ((p / marker).stat().st_mtime, p.name))


# ------------------------------------------------------------------------------------- loading


@dataclasses.dataclass(frozen=True)
class Setup:
    """A checked combination of checkpoint, statistics and dataset."""

    checkpoint: Checkpoint
    params_path: Path
    statistics: Statistics
    stats_dir: Path
    dataset: xr.Dataset
    dataset_path: Path
    steps: int


def load_setup(
    paths: DataPaths,
    params: Optional[PathLike] = None,
    dataset: Optional[PathLike] = None,
    stats_dir: Optional[PathLike] = None,
    steps: Optional[int] = None,
    checkpoint: Optional[Checkpoint] = None,
) -> Setup:
    """Loads and cross-checks the three inputs; ``steps`` defaults to every target available."""
    params_path = choose_params(paths, params) if checkpoint is None else Path(params or "")
    checkpoint = checkpoint or load_checkpoint(params_path)
    dataset_path = choose_dataset(paths, dataset, checkpoint)
    frame = validation.open_dataset(dataset_path)
    if steps is None or steps == 0:
        steps = max(validation.available_steps(frame, checkpoint.task_config), 1)
    name = dataset_path.name
    validation.check_dataset(frame, name, checkpoint.model_config, checkpoint.task_config, steps)
    stats_dir = Path(stats_dir) if stats_dir else paths.stats
    statistics = load_statistics(stats_dir)
    validation.check_statistics(statistics, checkpoint.task_config, stats_dir)
    return Setup(checkpoint, params_path, statistics, stats_dir, frame, dataset_path, steps)


def precision_option(precision: str) -> str:
    """``--precision`` resolved for this machine (``auto``: bfloat16 on accelerators, float32 on
    CPUs); an unknown name is an InputError."""
    from graphcast_zero.predictor import resolve_precision

    try:
        return resolve_precision(precision)
    except ValueError as error:
        raise InputError(f"--{error}") from None


def forecast_window(dataset: xr.Dataset, task_config: TaskConfig, steps: int):
    """(inputs, targets, forcings) for a forecast from the start of the dataset."""
    window = dataset.isel(time=slice(0, input_frames(task_config) + steps))
    return data.extract_inputs_targets_forcings(window, task_config, slice("6h", f"{6 * steps}h"))


def use_compilation_cache(folder: Path) -> None:
    """Keeps compiled programs on disk, so a second run skips most of the compile time.

    Left alone when the user configured a cache (``JAX_COMPILATION_CACHE_DIR``).
    """
    import jax

    if jax.config.jax_compilation_cache_dir:
        return
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(folder))


# ---------------------------------------------------------------------------------- run folders


def default_run_name(label: str) -> str:
    """``20260301-120000-GraphCast_small``: a timestamp and the model's short name."""
    short = label.split(" - ")[0].removesuffix(".npz").replace(" ", "_")
    return f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{short}"


@contextlib.contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """Yields a hidden folder beside ``final``; on success its files land in ``final``.

    A new ``final`` is a single rename; into an existing folder each file is renamed in. On any
    error the staging folder is removed, so nothing half-written is left.
    """
    validation.check_writable_folder(final.parent)
    stage = final.parent / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
        if final.exists():
            for item in stage.iterdir():
                os.replace(item, final / item.name)
            stage.rmdir()
        else:
            os.replace(stage, final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_netcdf(dataset: xr.Dataset, path: Path) -> Path:
    """Writes NetCDF through a temporary name and a rename."""
    with atomic_path(path) as temporary:
        dataset.to_netcdf(temporary)
    return path


def write_json(payload: dict, path: Path) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=1, default=str) + "\n", encoding="utf-8")
    return path


def environment_info() -> dict:
    """Package versions and the devices JAX sees, for ``run.json``."""
    import jax

    versions = {"python": sys.version.split()[0]}
    for package in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    devices = jax.devices()
    return {
        "versions": versions,
        "device": {
            "platform": devices[0].platform,
            "kind": devices[0].device_kind,
            "count": len(devices),
        },
    }
