"""Checks that a checkpoint, statistics and dataset fit each other, before anything compiles.

Each check raises :class:`~graphcast_zero.errors.InputError` with one line that names the file and
the fix. The checks are cheap (names, coordinates, a NaN scan of the frames that will be used), so
a wrong file fails in a second instead of after a graph build and a compile.
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


def open_dataset(path: PathLike) -> xr.Dataset:
    """Loads an example dataset into memory, turning unreadable files into one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"dataset {path} not found: run `invoke fetch-data` or pass --dataset")
    try:
        # The bucket's files (written in 2023) store `time` as hours with no dtype attribute;
        # recent xarray decodes such a variable as a timedelta only when asked to.
        with xr.open_dataset(path, decode_timedelta=True) as dataset:
            return dataset.load()
    except Exception as error:  # netCDF4, h5netcdf and scipy raise many types for a bad file
        raise InputError(
            f"dataset {path} cannot be read ({type(error).__name__}: truncated or not NetCDF): "
            "delete it and fetch it again (`invoke fetch-data`)"
        ) from None


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


def check_finite(dataset: xr.Dataset, task_config: TaskConfig, steps: int, name: str) -> None:
    """No NaN or infinity in the frames used: input frames of inputs, target frames of targets
    and forcings."""
    frames = task_config.input_frames
    later = set(task_config.target_variables) | set(task_config.forcing_variables)
    for variable in needed_variables(task_config):
        values = dataset[variable]
        if "time" in values.dims:
            start = 0 if variable in task_config.input_variables else frames
            stop = frames + steps if variable in later else frames
            values = values.isel(time=slice(start, stop))
        bad = int(np.count_nonzero(~np.isfinite(values.values)))
        if bad:
            raise InputError(
                f"dataset {name}: {variable} has {bad} NaN/inf values in the frames used: fill "
                "them or fetch the dataset again (`invoke fetch-data`)"
            )


def check_dataset(
    dataset: xr.Dataset,
    name: str,
    model_config: ModelConfig,
    task_config: TaskConfig,
    steps: int,
) -> None:
    """All dataset checks, cheapest first."""
    check_grid(dataset, model_config, name)
    check_levels(dataset, task_config, name)
    check_variables(dataset, task_config, name)
    check_time_steps(dataset, task_config, steps, name)
    check_finite(dataset, task_config, steps, name)


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
