"""From an example-dataset ``xarray.Dataset`` to model arrays, and from predictions back.

The edges of the pipeline: a dataset in the bucket's layout (dims ``batch, time, level, lat,
lon``; ``time`` as timedeltas; ``datetime(batch, time)``) becomes inputs, targets and forcings
following the official conventions, then plain arrays ``[batch, time, lat, lon, channels]`` per
variable. Predictions come back as arrays and leave as a dataset in the official prediction
layout.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Optional, Union

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_zero import solar
from graphcast_zero.config import PROGRESS_FEATURES, STEP, TOA_RADIATION, TaskConfig

SECONDS_PER_DAY = 86400
# The year progress divides by the mean tropical year, so it does not wrap at calendar New Year.
DAYS_PER_YEAR = 365.24219

Arrays = dict[str, np.ndarray]
LeadTimes = Union[slice, Sequence, str, pd.Timedelta]


def seconds_since_epoch(datetimes: np.ndarray) -> np.ndarray:
    """Whole seconds since 1970-01-01 for an array of datetime64 values."""
    return np.asarray(datetimes).astype("datetime64[s]").astype(np.int64)


def year_progress(seconds: np.ndarray) -> np.ndarray:
    """Fraction of the mean tropical year elapsed, in [0, 1), float64 (the features are float32)."""
    years = seconds / SECONDS_PER_DAY / np.float64(DAYS_PER_YEAR)
    return np.mod(years, 1.0)


def day_progress(seconds: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """Local solar-day fraction in [0, 1) at each longitude: shape ``seconds.shape + [n_lon]``,
    float64 (the features are float32)."""
    greenwich = np.mod(seconds, SECONDS_PER_DAY) / SECONDS_PER_DAY
    offsets = np.deg2rad(np.asarray(lon_deg, dtype=np.float64)) / (2 * np.pi)
    return np.mod(greenwich[..., None] + offsets, 1.0)


def add_progress_features(dataset: xr.Dataset) -> xr.Dataset:
    """Adds ``year_progress_{sin,cos}`` (batch, time) and ``day_progress_{sin,cos}`` (batch, time,
    lon) derived from the ``datetime`` coordinate; existing variables are kept."""
    if "datetime" not in dataset.coords:
        raise ValueError("dataset has no `datetime` coordinate to derive progress features from")
    seconds = seconds_since_epoch(dataset.coords["datetime"].values)
    time_dims = dataset.coords["datetime"].dims  # (batch, time) in the bucket's files
    features = {
        "year_progress": (time_dims, year_progress(seconds)),
        "day_progress": (time_dims + ("lon",), day_progress(seconds, dataset["lon"].values)),
    }
    new = {}
    for name, (dims, progress) in features.items():
        # The official features are computed from the float32 progress.
        phase = progress.astype(np.float32) * (2 * np.pi)
        for suffix, fn in (("sin", np.sin), ("cos", np.cos)):
            if f"{name}_{suffix}" not in dataset:
                new[f"{name}_{suffix}"] = xr.Variable(dims, fn(phase).astype(np.float32))
    return dataset.assign(new)


def _lead_times(target_lead_times: LeadTimes) -> tuple[Union[slice, list], pd.Timedelta]:
    """Normalises a lead-time request; returns the selector and the last lead time."""
    if isinstance(target_lead_times, slice):
        start = target_lead_times.start or pd.Timedelta(1, "ns")
        return slice(start, target_lead_times.stop), pd.Timedelta(target_lead_times.stop)
    if isinstance(target_lead_times, (str, pd.Timedelta)):
        target_lead_times = [target_lead_times]
    times = sorted(pd.Timedelta(t) for t in target_lead_times)
    return times, times[-1]


def extract_inputs_targets_forcings(
    dataset: xr.Dataset, task_config: TaskConfig, target_lead_times: LeadTimes
) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    """Splits an example dataset into inputs, targets and forcings, as the official code does.

    The time axis is shifted so that the dataset's last frame sits at the last requested lead
    time; inputs are the frames in (-input_duration, 0], targets the requested lead times and
    forcings the forcing variables at those lead times.

    Args:
      dataset: a dataset in the bucket's layout.
      task_config: which variables and levels.
      target_lead_times: e.g. ``slice("6h", "24h")`` or a list of timedeltas.

    Returns:
      (inputs, targets, forcings) datasets with lead-time ``time`` coordinates.
    """
    dataset = dataset.sel(level=list(task_config.pressure_levels))
    if set(task_config.forcing_variables) & set(PROGRESS_FEATURES):
        dataset = add_progress_features(dataset)
    if TOA_RADIATION in task_config.forcing_variables:
        dataset = solar.add_toa_incident_solar_radiation(dataset)
    dataset = dataset.drop_vars("datetime")
    selector, last_lead = _lead_times(target_lead_times)
    time = dataset.coords["time"]
    dataset = dataset.assign_coords(time=time + last_lead - time[-1])
    targets = dataset.sel(time=selector)
    earliest = -pd.Timedelta(task_config.input_duration) + pd.Timedelta(1, "ns")
    inputs = dataset.sel(time=slice(earliest, pd.Timedelta(0)))
    return (
        inputs[list(task_config.input_variables)],
        targets[list(task_config.target_variables)],
        targets[list(task_config.forcing_variables)],
    )


def forecast_window(
    dataset: xr.Dataset, task_config: TaskConfig, steps: int, start: int = 0
) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    """(inputs, targets, forcings) of a ``steps``-step forecast whose first frame is ``start``.

    The window holds the task's input frames and the ``steps`` frames after them; later frames
    of the dataset are left out.
    """
    window = dataset.isel(time=slice(start, start + task_config.input_frames + steps))
    return extract_inputs_targets_forcings(window, task_config, slice(STEP, steps * STEP))


def variable_to_array(variable: xr.DataArray, num_lat: int, num_lon: int) -> np.ndarray:
    """One variable as ``[batch, time, lat, lon, channels]`` float32.

    Missing ``batch``/``time`` dims become size 1, missing ``lat``/``lon`` are broadcast, and
    ``level`` (if any) becomes the channel axis.
    """
    for dim in ("batch", "time"):
        if dim not in variable.dims:
            variable = variable.expand_dims(dim)
    if "lat" not in variable.dims or "lon" not in variable.dims:
        shape = {"lat": num_lat, "lon": num_lon}
        variable = variable.expand_dims(
            {d: shape[d] for d in ("lat", "lon") if d not in variable.dims}
        )
    if "level" not in variable.dims:
        variable = variable.expand_dims("level", axis=-1)
    extra = set(variable.dims) - {"batch", "time", "lat", "lon", "level"}
    if extra:
        raise ValueError(f"variable {variable.name!r} has unexpected dims {sorted(extra)}")
    values = variable.transpose("batch", "time", "lat", "lon", "level").values
    return np.asarray(values, dtype=np.float32)


def dataset_to_arrays(dataset: xr.Dataset, names: Optional[Iterable[str]] = None) -> Arrays:
    """Variables of ``dataset`` as ``{name: [batch, time, lat, lon, channels]}`` float32 arrays."""
    num_lat, num_lon = dataset.sizes["lat"], dataset.sizes["lon"]
    names = list(dataset.data_vars) if names is None else list(names)
    return {name: variable_to_array(dataset[name], num_lat, num_lon) for name in names}


def arrays_to_dataset(
    arrays: Arrays,
    *,
    lat: np.ndarray,
    lon: np.ndarray,
    levels: Sequence[int],
    lead_times: Sequence,
    reference_datetimes: Optional[np.ndarray] = None,
) -> xr.Dataset:
    """Predictions ``{name: [batch, time, lat, lon, channels]}`` as a dataset in the official
    prediction layout: dims ``batch, time, level, lat, lon`` with ``time`` as lead times.

    Args:
      arrays: per variable; one channel means a surface variable, else one per level.
      lat, lon: grid coordinates in degrees.
      levels: pressure levels of the multi-level variables.
      lead_times: timedeltas of the predicted frames.
      reference_datetimes: [batch] datetime64 of lead time 0; adds a ``datetime(batch, time)``
        coordinate with the valid times when given.
    """
    lead_times = pd.to_timedelta(list(lead_times)).values
    data_vars = {}
    for name, array in arrays.items():
        array = np.asarray(array, dtype=np.float32)
        if array.shape[-1] == 1 and len(levels) != 1:
            data_vars[name] = (("batch", "time", "lat", "lon"), array[..., 0])
        else:
            data_vars[name] = (
                ("batch", "time", "level", "lat", "lon"),
                np.moveaxis(array, -1, 2),
            )
    coords = {
        "lat": np.asarray(lat, dtype=np.float32),
        "lon": np.asarray(lon, dtype=np.float32),
        "level": np.asarray(levels, dtype=np.int32),
        "time": lead_times,
    }
    dataset = xr.Dataset(data_vars, coords=coords)
    if reference_datetimes is not None:
        valid = np.asarray(reference_datetimes)[:, None] + lead_times[None, :]
        dataset = dataset.assign_coords(datetime=(("batch", "time"), valid))
    return dataset
