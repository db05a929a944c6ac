"""Input and residual normalisation as plain per-variable arrays.

Inputs and forcings become ``(x - mean) / stddev``. Targets that are also inputs are predicted as
residuals from the last input frame in units of ``diffs_stddev``; other targets are predicted
directly in units of ``stddev`` around ``mean``. Statistics are aligned by level coordinate, so
37-level files serve 13-level tasks.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from graphcast_zero.config import ATMOSPHERIC_VARIABLES, TaskConfig
from graphcast_zero.errors import InputError
from graphcast_zero.statistics import Statistics

# {"mean"|"stddev"|"diffs_stddev": {variable: [channels] float32}}
NormalizationArrays = dict[str, dict[str, np.ndarray]]


def _channel_values(dataset: xr.Dataset, name: str, levels, label: str) -> np.ndarray:
    if name not in dataset:
        raise InputError(
            f"{label}: no statistics for {name!r}; use the statistics files published with the "
            "model (`invoke fetch-data`)"
        )
    values = dataset[name]
    if name in ATMOSPHERIC_VARIABLES:
        missing = sorted(set(levels) - set(int(v) for v in values["level"].values))
        if missing:
            raise InputError(f"{label}: {name!r} has no statistics for levels {missing}")
        values = values.sel(level=list(levels))
    values = np.asarray(values.values, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(values)) or (label != "mean_by_level" and np.any(values <= 0)):
        raise InputError(f"{label}: statistics for {name!r} are not finite and positive")
    return values


def normalization_arrays(statistics: Statistics, task_config: TaskConfig) -> NormalizationArrays:
    """The statistics a task needs, as ``[channels]`` float32 arrays per variable.

    Raises:
      InputError: if a needed variable or level is missing, or a scale is not positive.
    """
    levels = task_config.pressure_levels
    inputs = set(task_config.input_variables)
    located = sorted(
        inputs
        | set(task_config.forcing_variables)
        | {t for t in task_config.target_variables if t not in inputs}
    )
    residual = sorted(t for t in task_config.target_variables if t in inputs)
    return {
        "mean": {n: _channel_values(statistics.mean, n, levels, "mean_by_level") for n in located},
        "stddev": {
            n: _channel_values(statistics.stddev, n, levels, "stddev_by_level") for n in located
        },
        "diffs_stddev": {
            n: _channel_values(statistics.diffs_stddev, n, levels, "diffs_stddev_by_level")
            for n in residual
        },
    }
