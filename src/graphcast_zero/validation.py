"""Checks that a checkpoint, statistics and dataset fit each other, before anything compiles.

Each check raises :class:`~graphcast_zero.errors.InputError` with one line that names the file and
the fix. The checks are cheap (names, coordinates, a NaN scan of the frames that will be used), so
a wrong file fails in a second instead of after a graph build and a compile. They only check:
datasets are opened (lazily) by :func:`graphcast_zero.sources.open_dataset`, and a check reads only
the frames it looks at.

A dataset may be forecast-only: frames after the data's end (``fetch-data --source era5`` past the
store's last time, real-time sources) hold NaN targets, and :func:`target_steps` counts the frames
that hold targets.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_zero.config import (
    DERIVED_VARIABLES,
    PRECIPITATION,
    STEP,
    TOA_RADIATION,
    ModelConfig,
    TaskConfig,
)
from graphcast_zero.errors import InputError
from graphcast_zero.model.normalization import normalization_arrays
from graphcast_zero.paths import PathLike
from graphcast_zero.statistics import Statistics

LIST_HINT = "(`invoke fetch-data --list`)"


def grid_spacing(coordinate: np.ndarray) -> Optional[float]:
    """The spacing of an equally spaced ascending coordinate, or None if it is not one."""
    values = np.asarray(coordinate, dtype=np.float64)
    steps = np.diff(values)
    if values.size < 2 or steps[0] <= 0 or not np.allclose(steps, steps[0], atol=1e-4):
        return None
    return float(steps[0])


def check_grid(dataset: xr.Dataset, model_config: ModelConfig, name: str) -> None:
    """Latitudes ascending and equally spaced, longitudes from 0, and the model's resolution."""
    for dim in ("lat", "lon", "batch", "time"):
        if dim not in dataset.dims:
            raise InputError(
                f"dataset {name} has no `{dim}` dimension: use a dataset in the official layout "
                f"{LIST_HINT}"
            )
    if "datetime" not in dataset.coords:
        raise InputError(f"dataset {name} has no `datetime` coordinate: use the official layout")
    lat_step = grid_spacing(dataset["lat"].values)
    lon_step = grid_spacing(dataset["lon"].values)
    if lat_step is None:
        raise InputError(
            f"dataset {name} latitudes are not ascending and equally spaced: sort them "
            "(`ds.sortby('lat')`) or use an official dataset"
        )
    if lon_step is None or abs(float(dataset["lon"].values[0])) > 1e-6:
        raise InputError(
            f"dataset {name} longitudes must run 0…360 equally spaced: convert them "
            "(`ds.assign_coords(lon=ds.lon % 360).sortby('lon')`)"
        )
    wanted = float(model_config.resolution)
    if wanted and (abs(lat_step - wanted) > 1e-6 or abs(lon_step - wanted) > 1e-6):
        raise InputError(
            f"dataset {name} has a {lat_step:g}° grid but the model needs {wanted:g}°: pick a "
            f"res-{wanted:g} dataset {LIST_HINT}"
        )


def check_levels(dataset: xr.Dataset, task_config: TaskConfig, name: str) -> None:
    """The dataset holds every pressure level of the task."""
    have = set(int(v) for v in dataset["level"].values) if "level" in dataset.coords else set()
    missing = sorted(set(task_config.pressure_levels) - have)
    if missing:
        count = len(task_config.pressure_levels)
        raise InputError(
            f"dataset {name} lacks pressure levels {missing} that the model needs: pick a "
            f"levels-{count} dataset {LIST_HINT}"
        )


def needed_variables(task_config: TaskConfig, with_targets: bool = True) -> list[str]:
    """Variables read from the file (progress features and solar radiation can be derived)."""
    names = set(task_config.input_variables) | set(task_config.forcing_variables)
    if with_targets:
        names |= set(task_config.target_variables)
    return sorted(names - set(DERIVED_VARIABLES) - {TOA_RADIATION})


def check_variables(dataset: xr.Dataset, task_config: TaskConfig, name: str) -> None:
    """Every variable the task reads or predicts is present (precipitation explained apart)."""
    if task_config.precipitation_input and PRECIPITATION not in dataset:
        raise InputError(
            f"dataset {name} has no {PRECIPITATION}, which this model reads as an input: pick an "
            f"era5 dataset {LIST_HINT}"
        )
    missing = [v for v in needed_variables(task_config) if v not in dataset]
    if missing:
        raise InputError(
            f"dataset {name} lacks {', '.join(missing)}: use an official example dataset "
            f"{LIST_HINT}"
        )


def available_steps(dataset: xr.Dataset, task_config: TaskConfig) -> int:
    """How many 6-hour target steps follow the input frames in the dataset."""
    return int(dataset.sizes["time"]) - task_config.input_frames


def check_time_steps(dataset: xr.Dataset, task_config: TaskConfig, steps: int, name: str) -> None:
    """The time axis is 6-hourly and long enough for the input frames plus ``steps`` targets."""
    times = pd.to_timedelta(dataset["time"].values)
    if len(times) > 1 and not (np.diff(times) == STEP).all():
        raise InputError(f"dataset {name} time axis is not 6-hourly: use an official dataset")
    frames = task_config.input_frames
    if steps < 1:
        raise InputError(f"--steps must be at least 1 (got {steps})")
    if len(times) < frames + steps:
        raise InputError(
            f"dataset {name} has {len(times)} time steps but {frames} input frames + {steps} "
            f"steps need {frames + steps}: use --steps {max(len(times) - frames, 0)} or a "
            f"dataset with more steps {LIST_HINT}"
        )


def target_steps(
    dataset: xr.Dataset, task_config: TaskConfig, max_steps: Optional[int] = None
) -> int:
    """How many target frames after the input frames hold targets (the rest are forecast-only),
    counting no further than ``max_steps`` when given (a forecast of that many steps).

    A frame without targets has NaN everywhere; one surface target decides, read frame by frame,
    so a bound saves reading the frames a forecast does not reach.
    """
    frames = task_config.input_frames
    available = available_steps(dataset, task_config)
    if max_steps is not None:
        available = min(available, max_steps)
    probe = next(
        (
            v
            for v in task_config.target_variables
            if v in dataset and "level" not in dataset[v].dims
        ),
        None,
    )
    if probe is None:
        return available
    field = dataset[probe]
    for step in range(available):
        if np.isnan(field.isel(time=frames + step).values).all():
            return step
    return available


FRAMES_PER_READ = 8  # the NaN scan reads this many frames of one variable at a time


def check_finite(
    dataset: xr.Dataset,
    task_config: TaskConfig,
    steps: int,
    name: str,
    with_targets: Optional[int] = None,
) -> None:
    """No NaN or infinity in the frames used: input frames of inputs, target frames of forcings,
    and of targets the first ``with_targets`` target frames (default: all ``steps``).

    Frames are read a few at a time, so a dataset spanning many days is never loaded whole.
    """
    frames = task_config.input_frames
    with_targets = steps if with_targets is None else min(with_targets, steps)
    for variable in needed_variables(task_config):
        values = dataset[variable]
        spans = [(0, 1)]
        if "time" in values.dims:
            spans = []
            if variable in task_config.input_variables:
                spans.append((0, frames))
            if variable in task_config.forcing_variables:
                spans.append((frames, frames + steps))
            elif variable in task_config.target_variables:
                spans.append((frames, frames + with_targets))
        bad = sum(_count_bad(values, start, stop) for start, stop in spans)
        if bad:
            raise InputError(
                f"dataset {name}: {variable} has {bad} NaN/inf values in the frames used: fill "
                "them or fetch the dataset again (`invoke fetch-data`)"
            )


def _count_bad(values: xr.DataArray, start: int, stop: int) -> int:
    if "time" not in values.dims:
        return int(np.count_nonzero(~np.isfinite(values.values)))
    bad = 0
    for first in range(start, stop, FRAMES_PER_READ):
        block = values.isel(time=slice(first, min(first + FRAMES_PER_READ, stop))).values
        bad += int(np.count_nonzero(~np.isfinite(block)))
    return bad


def check_dataset(
    dataset: xr.Dataset,
    name: str,
    model_config: ModelConfig,
    task_config: TaskConfig,
    steps: int,
    check_values: bool = True,
) -> int:
    """All dataset checks, cheapest first; ``check_values=False`` leaves out the scan of the
    values for NaN/inf, for a caller that scans more frames itself.

    Returns:
      ``target_steps(dataset, task_config, steps)``: how many of the ``steps`` can be scored.
    """
    check_grid(dataset, model_config, name)
    check_levels(dataset, task_config, name)
    check_variables(dataset, task_config, name)
    check_time_steps(dataset, task_config, steps, name)
    scored = target_steps(dataset, task_config, steps)
    if check_values:
        check_finite(dataset, task_config, steps, name, scored)
    return scored


def check_statistics(statistics: Statistics, task_config: TaskConfig, stats_dir: PathLike) -> None:
    """Every variable and level the task normalises has finite, positive statistics."""
    try:
        normalization_arrays(statistics, task_config)
    except InputError as error:
        raise InputError(f"{Path(stats_dir) / str(error)}") from None


def check_writable_folder(folder: PathLike) -> Path:
    """Creates ``folder`` if needed and proves it is writable by writing a temporary file."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise InputError(
            f"output folder {folder} is not writable ({reason}): choose another with --output "
            "or --data-dir"
        ) from None
    return folder
