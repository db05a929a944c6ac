"""Derives the official-extra example batches from the official-small batch.

The official-small batch (smooth analytic fields on a 4° grid, 13 levels, six frames) came from
elsewhere and is read as data. Each official-extra batch is made from its first frames by:

1. regridding: plain selection when the target grid is a subset of the 4° grid, otherwise linear
   interpolation in latitude, then in longitude (periodic);
2. for 37 levels: the 13 levels copied, the levels between them linear in log-pressure, and the
   eight above 50 hPa synthesised from the 50 hPa anomaly scaled by the statistics' stddev ratio,
   rolled eastward one more grid column per level so each is a distinct field; specific humidity
   kept ≥ 1e-7;
3. re-dating each batch member (a second member is rolled east by a quarter of the longitudes,
   rounded down);
4. recomputing ``toa_incident_solar_radiation`` with DeepMind's solar code for the new dates.

The arithmetic (float32 differences, float64 weights, one cast at the end) is the one that made the
committed files: the result is bit-identical to them, also on another CPU than the one that made
them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xarray as xr
from configurations import LEVELS_13, LEVELS_37, DatasetRecipe

TISR = "toa_incident_solar_radiation"
SPECIFIC_HUMIDITY_FLOOR = np.float32(1e-7)
DESCRIPTION = (
    "Synthetic GraphCast-format example batch derived from the official-small fixture batch "
    "(smooth analytic fields, not ERA5): regridded, re-dated, extra levels synthesised; "
    "toa_incident_solar_radiation recomputed by the official solar-radiation code."
)


def interpolate_along(values: np.ndarray, axis: int, nodes, targets, period=None) -> np.ndarray:
    """Piecewise-linear interpolation of ``values`` along one axis, returned as float64.

    Each target uses the interval whose upper node is the first node ≥ it (a target on a node takes
    the interval ending there), and the value is ``(v_hi − v_lo) / (x_hi − x_lo) · (t − x_lo) +
    v_lo`` with ``v_hi − v_lo`` in the values' own dtype: this order of operations is what
    reproduces the committed batches bit for bit.

    Args:
      values: the array to interpolate.
      axis: the axis of ``nodes``.
      nodes: increasing coordinates of that axis.
      targets: coordinates to interpolate to, inside the nodes' range (plus ``period``).
      period: for a periodic axis (longitude: 360), the first node is repeated one period on.
    """
    nodes = np.asarray(nodes, np.float64)
    targets = np.asarray(targets, np.float64)
    if period is not None:
        nodes = np.append(nodes, nodes[0] + period)
        values = np.concatenate([values, np.take(values, [0], axis=axis)], axis=axis)
    upper = np.clip(np.searchsorted(nodes, targets, side="left"), 1, len(nodes) - 1)
    lower = upper - 1
    shape = [1] * values.ndim
    shape[axis] = -1
    step = np.take(values, upper, axis=axis) - np.take(values, lower, axis=axis)
    slope = step / (nodes[upper] - nodes[lower]).reshape(shape)
    return slope * (targets - nodes[lower]).reshape(shape) + np.take(values, lower, axis=axis)


def regrid(batch: xr.Dataset, lat: list[float], lon: list[float]) -> xr.Dataset:
    """``batch`` on the grid ``lat`` × ``lon``: selected where it is a subset, else interpolated."""
    if set(lat) <= set(batch.lat.values.tolist()) and set(lon) <= set(batch.lon.values.tolist()):
        return batch.sel(lat=lat, lon=lon)
    regridded = {}
    for name, variable in batch.data_vars.items():
        values = interpolate_along(
            variable.values, variable.dims.index("lat"), batch.lat.values, lat
        )
        values = interpolate_along(
            values, variable.dims.index("lon"), batch.lon.values, lon, period=360.0
        )
        regridded[name] = (variable.dims, values.astype(variable.dtype), variable.attrs)
    coords = {name: batch[name] for name in batch.coords if name not in ("lat", "lon")}
    coords.update(lat=np.asarray(lat, batch.lat.dtype), lon=np.asarray(lon, batch.lon.dtype))
    return xr.Dataset(regridded, coords=coords, attrs=batch.attrs)


def _level_fields(
    variable: xr.DataArray, levels: tuple[int, ...], mean: xr.DataArray, stddev: xr.DataArray
) -> np.ndarray:
    """One atmospheric variable on ``levels``: copied, log-p interpolated or synthesised above."""
    known = variable.level.values
    axis = variable.dims.index("level")
    top = known.min()
    inside = [p for p in levels if top < p <= known.max() and p not in known]
    interpolated = interpolate_along(
        variable.values, axis, np.log(known.astype(np.float64)), np.log(np.asarray(inside, float))
    ).astype(variable.dtype)
    above = sorted((p for p in levels if p < top), reverse=True)  # nearest to the top level first
    anomaly = variable.sel(level=top).values - mean.sel(level=top).values
    fields = {}
    for rank, level in enumerate(above, start=1):
        ratio = stddev.sel(level=level).values / stddev.sel(level=top).values
        rolled = np.roll(anomaly, rank, axis=-1)  # eastward by `rank` columns
        fields[level] = mean.sel(level=level).values + ratio * rolled
    for index, level in enumerate(inside):
        fields[level] = np.take(interpolated, index, axis=axis)
    for level in known:
        fields[level] = variable.sel(level=level).values
    return np.stack([fields[level] for level in levels], axis=axis)


def add_levels(batch: xr.Dataset, levels: tuple[int, ...], mean: xr.Dataset, stddev: xr.Dataset):
    """``batch`` with its atmospheric variables on ``levels`` (see the module docstring)."""
    atmospheric = [name for name, variable in batch.data_vars.items() if "level" in variable.dims]
    widened = batch.drop_dims("level").assign_coords(level=np.asarray(levels, batch.level.dtype))
    for name in atmospheric:
        values = _level_fields(batch[name], levels, mean[name], stddev[name])
        if name == "specific_humidity":
            values = np.maximum(values, SPECIFIC_HUMIDITY_FLOOR)
        widened[name] = (batch[name].dims, values, batch[name].attrs)
    return widened[list(batch.data_vars)]


def redate(batch: xr.Dataset, start: str, columns: int) -> xr.Dataset:
    """One batch member starting at ``start``, time-dependent fields rolled ``columns`` east."""
    member = batch.copy()
    for name, variable in batch.data_vars.items():
        if "time" in variable.dims and columns:
            member[name] = variable.roll(lon=columns, roll_coords=False)
    datetimes = np.datetime64(start, "ns") + batch.time.values
    return member.assign_coords(datetime=(("batch", "time"), datetimes[None]))


def derive_dataset(
    source: xr.Dataset,
    recipe: DatasetRecipe,
    mean: xr.Dataset,
    stddev: xr.Dataset,
    add_tisr: Callable[[xr.Dataset], None],
) -> xr.Dataset:
    """The example batch of ``recipe``, from the official-small batch ``source``.

    Args:
      source: the official-small batch (batch 1, 4° grid, 13 levels).
      recipe: grid, dates, levels and frames to make.
      mean, stddev: the official-small statistics (37 levels) for the levels above 50 hPa.
      add_tisr: DeepMind's ``data_utils.add_tisr_var`` (adds the radiation to a dataset in place).
    """
    frames = source.isel(time=slice(0, recipe.frames)).drop_vars(TISR)
    batch = regrid(frames, recipe.grid.latitudes(), recipe.grid.longitudes())
    if recipe.levels != batch.sizes["level"]:
        batch = add_levels(batch, {13: LEVELS_13, 37: LEVELS_37}[recipe.levels], mean, stddev)
    members = []
    shift = batch.sizes["lon"] // 4  # a quarter of the longitudes, rounded down
    for index, start in enumerate(recipe.starts):
        member = redate(batch.drop_vars("datetime"), start, shift if index else 0)
        add_tisr(member)
        members.append(member[list(source.data_vars)])
    derived = xr.concat(members, "batch", data_vars="minimal", coords="different", compat="equals")
    return derived.assign_attrs(
        resolution=float(recipe.grid.step),
        seed=source.attrs.get("seed", 0),
        description=DESCRIPTION,
    )
