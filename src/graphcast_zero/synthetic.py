"""Synthetic GraphCast data in the official formats: one generator for the demo, notebooks, tests.

:func:`make_example_dataset` builds an example batch laid out like the bucket's datasets (dims
``batch, time, lat, lon, level``; ``time`` as lead-time timedeltas, ``datetime(batch, time)``;
float32 variables) from smooth analytic fields with realistic magnitudes: continents and
mountains, a pole-to-equator temperature gradient in January, a lapse rate and a stratosphere,
hydrostatic geopotential, jets, and travelling waves so a multi-step forecast has something to
follow. :func:`make_statistics` computes normalisation files from those fields, and
:func:`write_demo_bundle` writes everything, plus the demo model trained on these fields
(:mod:`graphcast_zero.demo_model`), into a data folder. :func:`make_era5_store` lays the same
fields out as the public ERA5 Zarr stores do (ARCO-ERA5 or WeatherBench2,
:mod:`graphcast_zero.sources.layouts`) and :func:`write_era5_store` writes one. Everything is
seeded and labelled SYNTHETIC; nothing here is ERA5.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_zero import config, data
from graphcast_zero.atomic import write_netcdf
from graphcast_zero.config import DEMO_MODEL, GRAVITY, ModelConfig, TaskConfig
from graphcast_zero.errors import InputError
from graphcast_zero.paths import STATS_FILES, DataPaths
from graphcast_zero.sources.official_file import official_grid

if TYPE_CHECKING:
    from graphcast_zero.checkpoint import Checkpoint
    from graphcast_zero.sources.layouts import StoreLayout

R_DRY = 287.05  # J/(kg K)
DEMO_DATE = "2022-01-01"
DEMO_RESOLUTION = 4.0
DEMO_STEPS = 8
SYNTHETIC = "SYNTHETIC demo data from graphcast_zero.synthetic: smooth analytic fields, not ERA5"
# Continents as (lat, lon, radius) bumps in degrees; their sum is thresholded into coastlines.
_CONTINENTS = (
    (47, -100, 20), (62, -115, 17), (33, -88, 12), (66, -150, 10), (20, -100, 8), (73, -40, 10),
    (-8, -60, 15), (-30, -65, 10), (5, -70, 10), (5, 20, 20), (-20, 25, 13), (20, 8, 16),
    (50, 15, 11), (60, 40, 14), (50, 90, 24), (30, 100, 14), (62, 120, 20), (20, 78, 9),
    (66, 80, 18), (24, 46, 9), (-25, 134, 13), (0, 114, 6),
)  # fmt: skip
# Mountains as (lat, lon, lat radius, lon radius, height in m).
_MOUNTAINS = (
    (45, -112, 12, 6, 2200), (-20, -68, 18, 3, 3800), (33, 88, 6, 14, 4800), (46, 10, 3, 5, 1500),
    (0, 37, 8, 5, 1300), (-82, 30, 10, 80, 2800), (72, -40, 6, 10, 2000),
)  # fmt: skip


def grid(resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes −90…90 (poles included) and longitudes 0…360−res, in degrees, like the bucket."""
    n_lat = 180 / resolution
    if resolution <= 0 or abs(n_lat - round(n_lat)) > 1e-9:
        raise InputError(f"demo grid resolution {resolution}° must divide 180°, e.g. 4.0 or 10.0")
    return official_grid(resolution)


def dataset_file_name(resolution: float, levels: int, steps: int, date: str = DEMO_DATE) -> str:
    """The bucket-style name of a generated dataset (source ``fake``, like DeepMind's fakes)."""
    return f"source-fake_date-{date}_res-{float(resolution)}_levels-{levels}_steps-{steps:02d}.nc"


def _bumps(lat, lon, centres, radius_index=2):
    """Sum of Gaussian bumps in great-circle distance; lat [n_lat, 1], lon [1, n_lon]."""
    total = np.zeros(np.broadcast_shapes(lat.shape, lon.shape))
    for centre in centres:
        c_lat, c_lon = np.radians(centre[0]), np.radians(centre[1])
        cos_d = np.sin(lat) * np.sin(c_lat) + np.cos(lat) * np.cos(c_lat) * np.cos(lon - c_lon)
        distance = np.degrees(np.arccos(np.clip(cos_d, -1, 1)))
        total += np.exp(-((distance / centre[radius_index]) ** 2))
    return total


def _geography(lat, lon, rng) -> tuple[np.ndarray, np.ndarray]:
    """Land fraction in [0, 1] and surface height in m; lat/lon in radians, [n_lat, 1]/[1, n_lon]."""
    wiggle = 0.0
    for m, n in ((3, 2), (5, 4), (7, 6)):
        wiggle = wiggle + 0.25 * np.sin(m * lon + n * lat + rng.uniform(0, 2 * np.pi))
    bumps = _bumps(lat, lon, _CONTINENTS) * (1 + wiggle)  # ragged coasts, open ocean untouched
    antarctica = 1 / (1 + np.exp((np.degrees(lat) + 68) / 2))
    land = np.clip(1 / (1 + np.exp(-12 * (bumps - 0.55))) + antarctica, 0, 1)
    height = np.zeros_like(land)
    for m_lat, m_lon, r_lat, r_lon, top in _MOUNTAINS:
        d_lon = (np.degrees(lon) - m_lon + 180) % 360 - 180
        height += top * np.exp(-(((np.degrees(lat) - m_lat) / r_lat) ** 2) - (d_lon / r_lon) ** 2)
    return land, land * (250 + height)


def _waves(lat, lon, hours, rng) -> tuple[np.ndarray, np.ndarray]:
    """Eastward-travelling waves in mid-latitudes of both hemispheres.

    Returns:
      ``w`` (a height/pressure pattern, about ±1) and ``dw`` (its zonal phase derivative, for
      winds); both [time, 1, n_lat, n_lon] with hours [time, 1, 1, 1].
    """
    w, dw = 0.0, 0.0
    for hemisphere in (1, -1):
        for k in rng.choice([3, 4, 5, 6, 7], size=2, replace=False):
            speed = np.radians(rng.uniform(8, 15)) / 24  # eastward, radians of longitude per hour
            phase = rng.uniform(0, 2 * np.pi)
            envelope = np.exp(-(((np.degrees(lat) - 47 * hemisphere) / 14) ** 2))
            argument = k * (lon - speed * hours) + phase
            w = w + envelope * np.cos(argument) / 2
            dw = dw - envelope * np.sin(argument) / 2
    return w, dw


def _mean_temperature(p, t_sea):
    """Air temperature (K) at pressure p (hPa): a lapse rate below, a warming stratosphere above."""
    troposphere = t_sea * (p / 1013.25) ** 0.19
    # Warming with height above 100 hPa, colder over the winter pole (where the sea is colder).
    aloft = np.clip(np.log10(100 / p) / 2, 0, 1)
    stratosphere = 212 + (48 + 0.4 * (t_sea - 280)) * aloft
    return stratosphere + 4 * np.logaddexp(0, (troposphere - stratosphere) / 4)


def _wave_shape(p):
    """How the waves' temperature signal fades with height."""
    return 0.4 + 0.6 * np.sqrt(np.minimum(p, 1000) / 1000)


def _temperature(p, t_sea, w):
    return _mean_temperature(p, t_sea) + 3 * w * _wave_shape(p)


def _geopotential(levels, t_sea, w, msl):
    """Hydrostatic geopotential: Φ(1000 hPa) from sea-level pressure, then R∫T dln p upwards.

    The integral runs on a fixed fine pressure grid, tabulated against sea-level temperature and
    interpolated per column: fast, and identical whichever levels are asked for (13 or 37).
    """
    log_p = np.linspace(np.log(1000), np.log(0.5), 200)  # [fine]
    table_t = np.linspace(150, 350, 401)  # [table]
    fine_p = np.exp(log_p)[:, None]
    integrand = np.concatenate(
        [_mean_temperature(fine_p, table_t[None]), _wave_shape(fine_p)], axis=1
    )
    steps = (integrand[1:] + integrand[:-1]) / 2 * -np.diff(log_p)[:, None]
    cumulative = np.concatenate([np.zeros_like(steps[:1]), np.cumsum(steps, axis=0)])
    at_levels = np.stack([np.interp(-np.log(levels), -log_p, column) for column in cumulative.T], 1)
    mean_part = np.stack([np.interp(t_sea[:, 0], table_t, row[:-1]) for row in at_levels], 1)
    wave_part = at_levels[:, -1][:, None, None] * 3 * w  # [time, level, lat, lon]
    at_1000 = R_DRY * t_sea * np.log(msl / 100000)  # [time, 1, lat, lon]
    height_waves = GRAVITY * 120 * w * (1 + np.log(1000 / levels[:, None, None]) / 2)
    return at_1000 + R_DRY * (mean_part + wave_part) + height_waves


def _winds(p, lat, w, dw):
    """Zonal jets plus wave winds (m/s) at pressure p; the polar night jet in the north."""
    lat_deg, log_p = np.degrees(lat), np.log(p / 200)
    jet = 32 * np.exp(-(((np.abs(lat_deg) - 35) / 10) ** 2) - log_p**2)
    easterlies = 5 * np.exp(-((lat_deg / 14) ** 2))
    westerlies = 7 * np.exp(-(((np.abs(lat_deg) - 48) / 14) ** 2)) - easterlies
    vortex = 45 * np.exp(-(((lat_deg - 62) / 10) ** 2)) * np.clip(np.log10(100 / p) / 2, 0, 1)
    aloft = 0.6 + 0.8 * np.exp(-(np.log(p / 300) ** 2))
    sign = np.tanh(lat_deg / 8)  # geostrophic winds turn with the Coriolis sign
    u = jet + westerlies + vortex + 4 * aloft * w * sign
    v = 11 * aloft * dw * sign
    return u, v


def _vertical_velocity(p, lat, dw):
    """Pressure velocity (Pa/s): ascent ahead of troughs and in the ITCZ, largest mid-column."""
    lat_deg, shape = np.degrees(lat), np.sin(np.pi * np.clip(p, 0, 1000) / 1100)
    subsidence = 0.03 * np.exp(-(((np.abs(lat_deg) - 25) / 8) ** 2))
    itcz = -0.08 * np.exp(-(((lat_deg - 5) / 6) ** 2)) + subsidence
    return (0.15 * dw * np.tanh(lat_deg / 8) + itcz) * shape


def _specific_humidity(p, temperature, omega, land, w):
    """kg/kg: relative humidity (wetter over sea and where air rises) times saturation, plus a
    few ppm of stratospheric water that the waves stir."""
    e_sat = 611.2 * np.exp(17.67 * (temperature - 273.15) / (temperature - 29.65))  # Pa
    q_sat = np.minimum(0.622 * e_sat / (100 * p), 0.03)
    humidity = np.clip(
        (0.8 - 0.3 * land - 1.5 * omega) * (np.minimum(p, 1000) / 1000) ** 3, 0.02, 1
    )
    return humidity * q_sat + 2.5e-6 * (1 + 0.3 * w)


def _fields(lat_deg, lon_deg, levels, hours, year_progress, seed):
    """All variables as float64 arrays: statics [lat, lon], surface [time, lat, lon],
    atmospheric [time, level, lat, lon]."""
    rng = np.random.default_rng(seed)
    lat, lon = np.radians(lat_deg)[:, None], np.radians(lon_deg)[None, :]
    land, height = _geography(lat, lon, rng)
    hours4 = np.asarray(hours, float)[:, None, None, None]
    w, dw = _waves(lat, lon, hours4, rng)  # [time, 1, lat, lon]
    season = np.cos(2 * np.pi * np.asarray(year_progress))[:, None, None, None]
    t_sea = 258 + 42 * np.cos(lat) ** 2 - 12 * np.sin(lat) * season + 4 * w
    local_hour = (hours4 + np.degrees(lon) / 15) % 24
    diurnal = 6 * land * np.cos(2 * np.pi * (local_hour - 15) / 24)
    abs_lat = np.abs(np.degrees(lat))
    highs, lows = np.exp(-(((abs_lat - 30) / 12) ** 2)), np.exp(-(((abs_lat - 60) / 10) ** 2))
    msl = 101325 + 900 * highs - 1200 * lows - 1500 * w  # subtropical highs, subpolar lows
    p = np.asarray(levels, float)[:, None, None]
    temperature = _temperature(p, t_sea, w)
    u, v = _winds(p, lat, w, dw)
    omega = _vertical_velocity(p, lat, dw)
    u10, v10 = (0.6 * x for x in _winds(np.array(1000.0), lat, w, dw))
    # Rain where air rises at 700 hPa, more where it is moist at 850 hPa; metres per 6 hours.
    omega_700 = _vertical_velocity(np.array(700.0), lat, dw)
    t_850 = _temperature(np.array(850.0), t_sea, w)
    q_850 = _specific_humidity(np.array(850.0), t_850, omega_700, land, w)
    rain = 1e-6 + 2.5e-3 * np.maximum(-omega_700 / 0.1, 0) ** 1.2 * q_850 / 0.012
    surface = lambda x: np.broadcast_to(x, w.shape)[:, 0]  # noqa: E731
    return {
        "geopotential_at_surface": GRAVITY * height,
        "land_sea_mask": land,
        "2m_temperature": surface(t_sea - 0.0065 * height + diurnal - 2),
        "mean_sea_level_pressure": surface(msl),
        "10m_v_component_of_wind": surface(v10),
        "10m_u_component_of_wind": surface(u10),
        config.PRECIPITATION: surface(rain),
        "temperature": temperature,
        "geopotential": _geopotential(p[:, 0, 0], t_sea, w, msl),
        "u_component_of_wind": u,
        "v_component_of_wind": np.broadcast_to(v, u.shape),
        "vertical_velocity": np.broadcast_to(omega, u.shape),
        "specific_humidity": _specific_humidity(p, temperature, omega, land, w),
    }


def _as_variable(value: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """Official dims and float32; time-dependent fields get the leading batch axis."""
    if value.ndim == 2:
        return ("lat", "lon"), value.astype(np.float32)
    dims = (
        ("batch", "time", "lat", "lon")
        if value.ndim == 3
        else ("batch", "time", "level", "lat", "lon")
    )
    return dims, value[None].astype(np.float32)


def make_example_dataset(
    resolution: float = DEMO_RESOLUTION,
    steps: int = DEMO_STEPS,
    levels: int | Sequence[int] = 13,
    date: str = DEMO_DATE,
    seed: int = 0,
    solar: bool = True,
) -> xr.Dataset:
    """A synthetic example batch in the bucket's layout: 2 input frames plus ``steps`` targets.

    Args:
      resolution: grid spacing in degrees (must divide 180); 4.0 gives 46 x 90 points.
      steps: 6-hour target steps after the two input frames.
      levels: 13, 37 or explicit pressure levels in hPa.
      date: the first frame's date (00 UTC).
      seed: drives the coastline detail and the waves.
      solar: add ``toa_incident_solar_radiation`` with :mod:`graphcast_zero.solar`.

    Returns:
      Dims ``batch=1, time=steps+2, lat, lon, level``; float32 variables.
    """
    lat, lon = grid(resolution)
    level_values = config.PRESSURE_LEVELS[levels] if isinstance(levels, int) else tuple(levels)
    time = np.arange(steps + 2) * config.STEP.to_timedelta64()  # [time]
    datetimes = np.datetime64(date, "ns") + time
    year_progress = data.year_progress(data.seconds_since_epoch(datetimes))  # [time]
    fields = _fields(
        lat, lon, np.asarray(level_values), time / np.timedelta64(1, "h"), year_progress, seed
    )
    dataset = xr.Dataset(
        {name: _as_variable(value) for name, value in fields.items()},
        coords={
            "lat": lat.astype(np.float32),
            "lon": lon.astype(np.float32),
            "time": time.astype("timedelta64[ns]"),
            "datetime": (("batch", "time"), datetimes[None]),
            "level": np.asarray(level_values, np.int32),
        },
        attrs={
            "resolution": float(resolution),
            "seed": int(seed),
            "description": f"{SYNTHETIC} (seed {seed}); made for demos and tests",
        },
    )
    if solar:
        from graphcast_zero.solar import add_toa_incident_solar_radiation

        dataset = add_toa_incident_solar_radiation(dataset)
    return dataset[
        [
            *config.STATIC_VARIABLES,
            *config.SURFACE_TARGETS,
            *([config.TOA_RADIATION] if solar else []),
            *config.ATMOSPHERIC_VARIABLES,
        ]
    ]


def _progress_statistics() -> dict[str, tuple[float, float, float]]:
    """(mean, stddev, diffs stddev) of the derived progress features.

    A phase uniform on [0, 1) has mean 1/2 and stddev 1/√12; its sine and cosine mean 0 and stddev
    1/√2. In 6 hours the year phase moves by 6/(24·DAYS_PER_YEAR) of a turn, so its sine and cosine
    change by that angle times 1/√2 in rms; the day phase moves a quarter turn, and
    sin(x + π/2) − sin(x) = √2·cos(x + π/4) has an rms of exactly 1.
    """
    year_step = 2 * np.pi * 6 / 24 / data.DAYS_PER_YEAR
    return {
        "year_progress": (0.5, 12**-0.5, year_step / (2 * np.pi)),
        "year_progress_sin": (0.0, 0.5**0.5, year_step * 0.5**0.5),
        "year_progress_cos": (0.0, 0.5**0.5, year_step * 0.5**0.5),
        "day_progress": (0.5, 12**-0.5, 0.25),
        "day_progress_sin": (0.0, 0.5**0.5, 1.0),
        "day_progress_cos": (0.0, 0.5**0.5, 1.0),
    }


def make_statistics(
    resolution: float = DEMO_RESOLUTION, steps: int = DEMO_STEPS, seed: int = 0, solar: bool = True
) -> dict[str, xr.Dataset]:
    """Normalisation statistics in the bucket's layout, computed from the generator's fields.

    Returns:
      ``{"mean_by_level": ..., "stddev_by_level": ..., "diffs_stddev_by_level": ...}``: 37 levels,
      per-level arrays for atmospheric variables, scalars otherwise, float32.
    """
    sample = make_example_dataset(resolution, steps, 37, seed=seed, solar=solar)
    over = ("batch", "time", "lat", "lon")
    mean, std, diffs = (xr.Dataset(coords={"level": sample.level}) for _ in range(3))
    for name, values in sample.data_vars.items():
        dims = [dim for dim in over if dim in values.dims]
        mean[name] = values.mean(dims).astype(np.float32)
        std[name] = values.std(dims).astype(np.float32)
        if "time" in values.dims:
            diffs[name] = values.diff("time").std(dims).astype(np.float32)
    for name, (m, s, d) in _progress_statistics().items():
        mean[name], std[name], diffs[name] = (xr.DataArray(np.float32(x)) for x in (m, s, d))
    attrs = {"description": f"{SYNTHETIC}: statistics of a seed-{seed} sample, not of ERA5"}
    names = [name.removesuffix(".nc") for name in STATS_FILES]
    by_name = {"mean_by_level": mean, "stddev_by_level": std, "diffs_stddev_by_level": diffs}
    return {name: by_name[name].assign_attrs(attrs) for name in names}


def random_checkpoint(
    model_config: ModelConfig,
    task_config: TaskConfig,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    seed: int = 0,
    description: str,
) -> Checkpoint:
    """A checkpoint in the official format with random, untrained weights for a grid.

    Args:
      model_config, task_config: the architecture and task (resolution 0 fits any grid).
      lat, lon: the grid the weights are initialised on, in degrees.
      seed: seeds the weights.
      description: what the checkpoint says it is.
    """
    from graphcast_zero.checkpoint import Checkpoint
    from graphcast_zero.model.graphcast import init_params

    return Checkpoint(
        params=init_params(model_config, task_config, lat, lon, seed),
        model_config=model_config,
        task_config=task_config,
        description=description,
        license="Random weights: no licence restrictions (CC0).",
    )


def _is_synthetic(path: Path) -> bool:
    with xr.open_dataset(path) as existing:
        return str(existing.attrs.get("description", "")).startswith("SYNTHETIC")


def write_demo_bundle(
    paths: DataPaths,
    resolution: float = DEMO_RESOLUTION,
    steps: int = DEMO_STEPS,
    seed: int = 0,
    force: bool = False,
    log: Optional[Callable[[str], None]] = None,
) -> list[Path]:
    """Writes the demo bundle into a data folder: dataset, statistics and the trained checkpoint.

    The checkpoint is the SYNTHETIC demo model that ships with the package, trained on this
    generator's fields with the statistics :func:`make_statistics` gives for the defaults. Files
    keep the bucket layout (``dataset/``, ``stats/``, ``params/``) so every task runs offline on
    them. Each file is written to a temporary name and renamed into place.

    Raises:
      InputError: a statistics file there holds real (non-synthetic) statistics and ``force`` is
        not set: the demo would silently replace them.
    """
    from graphcast_zero.checkpoint import save_checkpoint
    from graphcast_zero.demo_model import shipped_checkpoint

    for folder in (paths.params, paths.stats, paths.dataset):
        folder.mkdir(parents=True, exist_ok=True)
    for path in paths.stats_files():
        if path.exists() and not force and not _is_synthetic(path):
            raise InputError(
                f"{path} holds real statistics that the demo bundle would replace: write the demo "
                "elsewhere with --data-dir (e.g. data-demo) or delete the file"
            )
    dataset = make_example_dataset(resolution, steps, 13, seed=seed)
    written = [write_netcdf(dataset, paths.dataset / dataset_file_name(resolution, 13, steps))]
    for name, stats in make_statistics(resolution, steps, seed).items():
        written.append(write_netcdf(stats, paths.stats / f"{name}.nc"))
    written.append(save_checkpoint(shipped_checkpoint(), paths.params / DEMO_MODEL.file_name))
    if log:
        log(
            f"Wrote the SYNTHETIC demo bundle into {paths.root}:\n"
            + "\n".join(f"  {p}" for p in written)
        )
    return written


def make_era5_store(
    layout: StoreLayout,
    start: str = "2021-12-31T18",
    hours: int = 37,
    resolution: float = DEMO_RESOLUTION,
    padding: int = 0,
    seed: int = 0,
) -> xr.Dataset:
    """The generator's fields laid out as an ERA5 store of ``layout``, in memory.

    Names, dims, coordinate order (latitude 90 → -90, longitude 0 → 360-Δ), time step, level
    count, accumulations and statics follow the layout: ARCO's hourly ``total_precipitation`` is a
    sixth of the generator's 6-hour rain, its ``toa_incident_solar_radiation`` comes from
    :mod:`graphcast_zero.solar`; WeatherBench2 gets ``total_precipitation_6hr`` and no radiation.

    Args:
      layout: :data:`~graphcast_zero.sources.layouts.ARCO` or ``WEATHERBENCH2``.
      start: the first time.
      hours: how many hours from ``start`` hold data (every ``layout.time_step``).
      resolution: grid spacing in degrees (must divide 180).
      padding: times after the data whose values are NaN, like ARCO's axis that runs past its data.
      seed: as for :func:`make_example_dataset`.
    """
    from graphcast_zero.solar import toa_incident_solar_radiation
    from graphcast_zero.sources.layouts import ARCO

    ascending, lon = grid(resolution)
    lat = ascending[::-1] if layout.latitude_descending is not False else ascending
    step_hours = int(layout.time_step / pd.Timedelta(hours=1))
    offsets = np.arange(0, hours + padding * step_hours, step_hours)  # [time], hours
    times = np.datetime64(pd.Timestamp(start), "ns") + offsets * np.timedelta64(1, "h")
    levels = np.asarray(config.PRESSURE_LEVELS[layout.levels or 37])
    year_progress = data.year_progress(data.seconds_since_epoch(times))
    fields = _fields(lat, lon, levels, offsets, year_progress, seed)
    rain = fields.pop(config.PRECIPITATION)  # [time, lat, lon], metres per 6 hours
    fields[layout.precipitation] = rain * (layout.precipitation_period / config.STEP)
    if layout.solar:
        fields[layout.solar] = toa_incident_solar_radiation(times, lat, lon)
    store = xr.Dataset(
        {name: _store_variable(layout, name, value, len(times)) for name, value in fields.items()},
        coords={
            layout.time_dim: times,
            layout.level_dim: levels.astype(np.int64),
            layout.lat_dim: lat.astype(np.float32),
            layout.lon_dim: lon.astype(np.float32),
        },
        attrs={"description": f"{SYNTHETIC} (seed {seed}), in the {layout.title} layout"},
    )
    if padding:
        after = store[layout.time_dim] >= times[-padding]
        store = store.map(lambda v: v.where(~after) if layout.time_dim in v.dims else v)
    if layout is ARCO or layout.valid_range_attrs:
        last = pd.Timestamp(times[len(times) - padding - 1])
        keys = layout.valid_range_attrs or ARCO.valid_range_attrs
        stamps = (pd.Timestamp(times[0]), last - pd.Timedelta(hours=12), last)
        store.attrs.update(
            {key: stamp.isoformat() for key, stamp in zip(keys, stamps, strict=True)}
        )
    return store


def _store_variable(layout: StoreLayout, name: str, value: np.ndarray, num_times: int):
    """(dims, float32 values) of one variable in a store of ``layout``."""
    dims = layout.dims_of(name)
    if value.ndim == 2 and len(dims) == 3:  # a static field with ARCO's time axis
        value = np.broadcast_to(value, (num_times, *value.shape))
    return dims, np.asarray(value, np.float32)


def write_era5_store(folder: Path, layout: StoreLayout, **options) -> Path:
    """Writes :func:`make_era5_store` as a Zarr store like the public ones: Zarr format 2,
    consolidated metadata, one time step per chunk, hours since 1900-01-01.

    Args:
      folder: the store's folder (replaced when it exists).
      layout: the layout to follow.
      **options: passed to :func:`make_era5_store`.
    """
    from graphcast_zero.sources.layouts import zarr_format_options

    store = make_era5_store(layout, **options)
    encoding = {
        name: {
            "chunks": tuple(
                1 if d == layout.time_dim else n for d, n in zip(v.dims, v.shape, strict=True)
            )
        }
        for name, v in store.data_vars.items()
    }
    encoding[layout.time_dim] = {"units": "hours since 1900-01-01", "dtype": "int64"}
    store.to_zarr(folder, mode="w", consolidated=True, encoding=encoding, **zarr_format_options())
    return Path(folder)


def make_open_data_fields(
    run, resolution: float = DEMO_RESOLUTION, levels: Sequence[int] = config.PRESSURE_LEVELS_13,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict[tuple[str, Optional[int]], np.ndarray]]:  # fmt: skip
    """The generator's fields at one analysis time as ECMWF's open data carries them.

    Short names and units of the open data (geopotential height ``gh`` in gpm, the statics
    ``lsm`` and ``z``), latitudes 90 → -90 and longitudes -180 → 180-Δ as its 0.25° files.

    Args:
      run: the analysis time.
      resolution: grid spacing in degrees (must divide 180).
      levels: the pressure levels in hPa.
      seed: as for :func:`make_example_dataset`.

    Returns:
      (latitudes, longitudes, {(short name, level or None): float64 values [lat, lon]}).
    """
    from graphcast_zero.sources import open_data

    ascending, east = grid(resolution)
    lat, lon = ascending[::-1], np.concatenate([east[east >= 180] - 360, east[east < 180]])
    when = np.datetime64(pd.Timestamp(run), "ns")[None]  # [1]
    hours = (when - np.datetime64(DEMO_DATE, "ns")) / np.timedelta64(1, "h")
    year_progress = data.year_progress(data.seconds_since_epoch(when))
    fields = _fields(lat, lon, np.asarray(levels), hours, year_progress, seed)
    out: dict[tuple[str, Optional[int]], np.ndarray] = {}
    for parameter in (*open_data.SURFACE, *open_data.STATICS):
        value = fields[parameter.name]
        out[(parameter.param, None)] = value[0] if value.ndim == 3 else value
    for parameter in open_data.ATMOSPHERIC:
        for index, level in enumerate(levels):
            out[(parameter.param, int(level))] = fields[parameter.name][0, index] / parameter.scale
    return lat, lon, out
