"""Normalisation statistics: the bucket's three ``stats/*.nc`` files, read as they are.

The published files are NetCDF3, float64, over 37 levels, and hold more variables than GraphCast
uses (``soil_type``, ``seconds_since_epoch`` with a NaN stddev, ...). Only the variables a task
needs are checked, so the extras are harmless.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Union

import xarray as xr

from graphcast_zero.errors import InputError
from graphcast_zero.paths import STATS_FILES


@dataclasses.dataclass(frozen=True)
class Statistics:
    """Per-variable, per-level normalisation statistics.

    Attributes:
      mean: ``mean_by_level``: locations of inputs, forcings and non-residual targets.
      stddev: ``stddev_by_level``: their scales.
      diffs_stddev: ``diffs_stddev_by_level``: scales of the 6-hour differences (residuals).
    """

    mean: xr.Dataset
    stddev: xr.Dataset
    diffs_stddev: xr.Dataset


def _open(path: Path) -> xr.Dataset:
    if not path.is_file():
        raise InputError(
            f"{path}: statistics file not found; run `invoke fetch-data` (or `--source demo`)"
        )
    try:
        with xr.open_dataset(path) as dataset:
            return dataset.load()
    except Exception as error:  # netCDF4/scipy raise many types for a damaged file
        raise InputError(
            f"{path}: cannot read statistics file ({type(error).__name__}); delete it and run "
            "`invoke fetch-data` again"
        ) from None


def load_statistics(stats_dir: Union[str, os.PathLike]) -> Statistics:
    """Reads ``diffs_stddev_by_level.nc``, ``mean_by_level.nc`` and ``stddev_by_level.nc``.

    Raises:
      InputError: if a file is missing or unreadable, naming the file and the fix.
    """
    stats_dir = Path(stats_dir)
    diffs, mean, stddev = (_open(stats_dir / name) for name in STATS_FILES)
    return Statistics(mean=mean, stddev=stddev, diffs_stddev=diffs)
