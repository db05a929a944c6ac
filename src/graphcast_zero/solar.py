"""Top-of-atmosphere (TOA) incident solar radiation, the forcing GraphCast needs at future times.

ERA5's ``toa_incident_solar_radiation`` (``tisr``) is the sunlight arriving at the top of the
atmosphere, integrated over the hour that *ends* at the time stamp, in J/m². Example datasets carry
it for the frames they hold; for lead times beyond them we compute it here.

The sun's position follows the empirical orbital formulas of the ECCC GEM model (``fctast.cdk``),
which ECMWF-compatible codes use; the total solar irradiance (TSI) is ERA5's yearly table (IFS cycle
41r2, scaled by 0.9965); the hour is integrated with the trapezoidal rule on 360 bins.

The arithmetic is float32 in JAX, like DeepMind's reference implementation, so that a forecast fed
with our forcing sees the numbers the official pipeline would give: on the official fixture the two
agree to 1.5 J/m² (three float32 steps at ~5e6 J/m²), as close as DeepMind's code run with and
without jit agrees with itself. That reference keeps time as float32 days since J2000, resolved to
42 s (84 s from June 2022): at 6-hourly stamps this costs ~1e-5 of the value against exact
arithmetic, at other stamps up to ~2e-3. ``exact_time=True`` removes that error.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from graphcast_zero.config import TOA_RADIATION
from graphcast_zero.errors import InputError

_SECONDS_PER_DAY = 86400
_J2000_EPOCH = np.datetime64("2000-01-01T12:00:00", "ns")  # Julian date 2451545.0
_DAYS_PER_JULIAN_YEAR = 365.25
_OBLIQUITY_RAD = 0.409093  # Tilt of the Earth's axis, 23.4393 degrees.

_DEFAULT_PERIOD = np.timedelta64(1, "h")  # ERA5 accumulates over the hour ending at the stamp.

# ERA5's total solar irradiance in W/m², one value per year, placed at mid-year (1951.5 ... 2034.5).
# From 1996 on, ECMWF repeats one 13-year solar cycle. Outside the table the end values are held.
_SOLAR_CYCLE_13Y = [
    1365.6121, 1365.7399, 1366.1021, 1366.3851, 1366.6836, 1366.6022, 1366.6807,
    1366.2300, 1366.0480, 1365.8545, 1365.8107, 1365.7240, 1365.6918,
]  # fmt: skip
_TSI_1951_TO_1995 = [
    1365.7765, 1365.7676, 1365.6284, 1365.6564, 1365.7773, 1366.3109, 1366.6681, 1366.6328,
    1366.3828, 1366.2767, 1365.9199, 1365.7484, 1365.6963, 1365.6976, 1365.7341, 1365.9178,
    1366.1143, 1366.1644, 1366.2476, 1366.2426, 1365.9580, 1366.0525, 1365.7991, 1365.7271,
    1365.5345, 1365.6453, 1365.8331, 1366.2747, 1366.6348, 1366.6482, 1366.6951, 1366.2859,
    1366.1992, 1365.8103, 1365.6416, 1365.6379, 1365.7899, 1366.0826, 1366.6479, 1366.5533,
    1366.4457, 1366.3021, 1366.0286, 1365.7971, 1365.6996,
]  # fmt: skip
_TSI_W_M2 = 0.9965 * np.array(_TSI_1951_TO_1995 + 3 * _SOLAR_CYCLE_13Y)  # [84]
_TSI_YEARS = 1951.5 + np.arange(_TSI_W_M2.size, dtype=np.float64)  # [84]

# Samples of the integrand summed per step of the compiled loop (the 361 samples are padded to 384
# with zero weights). A pairwise sum within each step keeps float32 rounding of the whole sum as
# small as an exact sum of the same terms would give (checked on the fixture), and one fused
# kernel per step keeps a 0.25-degree grid fast on a CPU.
_SAMPLES_PER_STEP = 24


class _SunPosition(NamedTuple):
    """Where the sun is, per sample time (each field float32 [num_samples])."""

    equation_of_time_s: jax.Array  # apparent minus mean solar time, seconds
    distance_au: jax.Array  # Earth-sun distance, astronomical units
    sin_declination: jax.Array
    cos_declination: jax.Array


def total_solar_irradiance(timestamps) -> np.ndarray:
    """ERA5's total solar irradiance at each time, interpolated in its yearly table.

    Args:
        timestamps: array-like of datetime64, shape [T].

    Returns:
        float64 [T], W/m².
    """
    times = np.asarray(timestamps, dtype="datetime64[ns]").reshape(-1)  # [T]
    year_start = times.astype("datetime64[Y]")
    year_length = (year_start + 1).astype("datetime64[ns]") - year_start.astype("datetime64[ns]")
    fraction = (times - year_start.astype("datetime64[ns]")) / year_length  # [T]
    fractional_year = year_start.astype(np.int64) + 1970 + fraction  # [T]
    return np.interp(fractional_year, _TSI_YEARS, _TSI_W_M2)


def _j2000_days(timestamps) -> np.ndarray:
    """Days since the J2000.0 epoch (2000-01-01 12:00), float64 [T]."""
    times = np.asarray(timestamps, dtype="datetime64[ns]").reshape(-1)
    return (times - _J2000_EPOCH) / np.timedelta64(_SECONDS_PER_DAY, "s")


def _weighted_sum(terms: list[jax.Array], weights: list[float]) -> jax.Array:
    """Sum of terms times constant weights, as one float32 dot product per element."""
    return jnp.dot(jnp.stack(terms, axis=-1), jnp.asarray(weights, dtype=jnp.float32))


def _sun_position(days: jax.Array) -> _SunPosition:
    """Sun position from days since J2000 (float32 [S]), with the GEM model's series."""
    years = days / _DAYS_PER_JULIAN_YEAR
    # The series' slowly turning angles (GEM's REL, REM, RLLS), radians, ~2π a year.
    rel = 1.7535 + 6.283076 * years
    rem = 6.240041 + 6.283020 * years
    rlls = 4.8951 + 6.283076 * years
    one = jnp.ones_like(years)
    sin_rel, cos_rel, sin_rem = jnp.sin(rel), jnp.cos(rel), jnp.sin(rem)
    ecliptic_longitude = _weighted_sum(
        [one, years, sin_rel, cos_rel, jnp.sin(2.0 * rel), jnp.cos(2.0 * rel)],
        [4.8952, 6.283320, -0.0075, -0.0326, -0.0003, 0.0002],
    )
    equation_of_time_s = _weighted_sum(
        [
            jnp.sin(2.0 * rlls),
            sin_rem,
            sin_rem * jnp.cos(2.0 * rlls),
            jnp.sin(4.0 * rlls),
            jnp.sin(2.0 * rem),
        ],
        [591.8, -459.4, 39.5, -12.7, -4.8],
    )
    distance_au = _weighted_sum([one, sin_rel, cos_rel], [1.0001, -0.0163, 0.0037])
    sin_declination = jnp.sin(_OBLIQUITY_RAD) * jnp.sin(ecliptic_longitude)
    return _SunPosition(
        equation_of_time_s=equation_of_time_s,
        distance_au=distance_au,
        sin_declination=sin_declination,
        cos_declination=jnp.sqrt(1.0 - sin_declination**2),
    )


@jax.jit
def _integrate_window(days, phase, weights, sin_lat, cos_lat, lon_rad, tsi):
    """Weighted sum over sample times of the instantaneous TOA flux at every grid point.

    Args:
        days: float32 [S], sample times in days since J2000; S a multiple of _SAMPLES_PER_STEP.
        phase: float32 [S], Earth's rotation as a fraction of a day, 0 at 12:00 UT.
        weights: float32 [S], trapezoid weights in seconds (0 for padding samples).
        sin_lat, cos_lat: float32 [n_lat].
        lon_rad: float32 [n_lon].
        tsi: float32 scalar, total solar irradiance in W/m².

    Returns:
        float32 [n_lat, n_lon], J/m².
    """
    sun = _sun_position(days)
    solar_time = phase + sun.equation_of_time_s / _SECONDS_PER_DAY  # [S]
    cos_hour_angle = jnp.cos(2.0 * jnp.pi * solar_time[:, None] + lon_rad[None, :])  # [S, n_lon]
    # sin(solar altitude) = lat_term_a * cos(hour angle) + lat_term_b
    lat_term_a = cos_lat[None, :] * sun.cos_declination[:, None]  # [S, n_lat]
    lat_term_b = sin_lat[None, :] * sun.sin_declination[:, None]  # [S, n_lat]
    flux_scale = tsi * (1.0 / sun.distance_au) ** 2 * weights  # [S]

    def sample_energy(s):  # [n_lat, n_lon], J/m² from sample s
        sin_altitude = lat_term_a[s][:, None] * cos_hour_angle[s][None, :] + lat_term_b[s][:, None]
        return flux_scale[s] * jnp.maximum(sin_altitude, 0.0)

    def add_step(step, total):
        parts = [sample_energy(step * _SAMPLES_PER_STEP + k) for k in range(_SAMPLES_PER_STEP)]
        while len(parts) > 1:  # pairwise sum: rounding grows with log(n), not n
            pairs = zip(parts[0::2], parts[1::2], strict=False)
            parts = [a + b for a, b in pairs] + ([parts[-1]] if len(parts) % 2 else [])
        return total + parts[0]

    total = jnp.zeros((sin_lat.shape[0], lon_rad.shape[0]), jnp.float32)
    return jax.lax.fori_loop(0, days.shape[0] // _SAMPLES_PER_STEP, add_step, total)


def _sample_offsets_and_weights(integration_period, num_integration_bins: int):
    """Offsets (days, ≤ 0) of the trapezoid samples and their weights (seconds), float64 [S]."""
    period_s = pd.Timedelta(integration_period).total_seconds()
    num_samples = num_integration_bins + 1
    padded = -(-num_samples // _SAMPLES_PER_STEP) * _SAMPLES_PER_STEP
    offsets_days = np.zeros(padded)
    offsets_days[:num_samples] = np.linspace(-period_s, 0.0, num_samples) / _SECONDS_PER_DAY
    weights = np.zeros(padded)
    weights[:num_samples] = period_s / num_integration_bins
    weights[[0, num_samples - 1]] /= 2.0
    return offsets_days, weights


def toa_incident_solar_radiation(
    timestamps,
    lat_deg: np.ndarray,
    lon_deg: np.ndarray,
    integration_period=_DEFAULT_PERIOD,
    num_integration_bins: int = 360,
    exact_time: bool = False,
) -> np.ndarray:
    """Computes ERA5-style TOA incident solar radiation on a lat/lon grid.

    Each value is the solar energy reaching the top of the atmosphere during the
    ``integration_period`` that ends at the time stamp (ERA5: one hour).

    Args:
        timestamps: array-like of datetime64, shape [T] (any shape is flattened).
        lat_deg: latitudes in degrees, [n_lat].
        lon_deg: longitudes in degrees, [n_lon].
        integration_period: length of the window (timedelta64, pandas Timedelta or "1h").
        num_integration_bins: trapezoid bins in the window (360: one sample every 10 s).
        exact_time: False (default) rounds each sample time to float32 days since J2000, as
            DeepMind's code does, so the forcing equals the official pipeline's. Float32 days
            resolve 42 s before June 2022 and 84 s after: 3- and 6-hourly stamps are exact, but
            other stamps (hourly ones) move by up to half that, up to ~1e-3 of the value. True
            keeps Earth's rotation exact (float64 day fractions), for any stamp.

    Returns:
        float32 [T, n_lat, n_lon], J/m².

    Raises:
        InputError: the grid is not 1-D, the period is not positive or there are no bins.
    """
    lat_deg, lon_deg = np.asarray(lat_deg), np.asarray(lon_deg)
    if lat_deg.ndim != 1 or lon_deg.ndim != 1:
        raise InputError(f"lat and lon must be 1-D, got shapes {lat_deg.shape}, {lon_deg.shape}.")
    if num_integration_bins < 1 or pd.Timedelta(integration_period) <= pd.Timedelta(0):
        raise InputError(
            f"need a positive period and bins, got {integration_period=}, {num_integration_bins=}."
        )
    offsets, weights = _sample_offsets_and_weights(integration_period, num_integration_bins)
    weights = jnp.asarray(weights, jnp.float32)
    lat_rad = jnp.radians(jnp.asarray(lat_deg, jnp.float32))  # [n_lat]
    lon_rad = jnp.radians(jnp.asarray(lon_deg, jnp.float32))  # [n_lon]
    sin_lat, cos_lat = jnp.sin(lat_rad), jnp.cos(lat_rad)
    days = _j2000_days(timestamps)  # [T]
    tsi = total_solar_irradiance(timestamps)  # [T]
    out = np.empty((days.size, lat_deg.size, lon_deg.size), np.float32)
    for i in range(days.size):  # one time at a time bounds memory to a few grids
        sample_days, phase = _sample_times(days[i], offsets, exact_time)
        tsi_i = jnp.float32(tsi[i])
        out[i] = _integrate_window(sample_days, phase, weights, sin_lat, cos_lat, lon_rad, tsi_i)
    return out


def _sample_times(end_day: float, offsets: np.ndarray, exact_time: bool):
    """Sample times in float32 days since J2000 and Earth's rotation phase, both [S]."""
    if exact_time:
        phase = (end_day % 1.0 + offsets) % 1.0  # float64: whole days dropped before rounding
        return jnp.asarray(end_day + offsets, jnp.float32), jnp.asarray(phase, jnp.float32)
    # The reference adds the offsets to the end time in float32 and takes the phase from that.
    days = jnp.float32(end_day) + jnp.asarray(offsets, jnp.float32)
    return days, days % 1.0


def add_toa_incident_solar_radiation(dataset: xr.Dataset) -> xr.Dataset:
    """Returns the dataset with ``toa_incident_solar_radiation``, computing it if missing.

    Args:
        dataset: has coordinates ``datetime`` (usually dims (batch, time)), ``lat`` and ``lon``.

    Returns:
        The same dataset if it already holds the variable; otherwise a copy with it added, dims
        ``datetime.dims + (lat, lon)``, float32, J/m².

    Raises:
        InputError: the dataset lacks ``datetime``, ``lat`` or ``lon``.
    """
    if TOA_RADIATION in dataset.data_vars:
        return dataset
    missing = [name for name in ("datetime", "lat", "lon") if name not in dataset.variables]
    if missing:
        raise InputError(
            f"dataset lacks {missing}, needed to compute {TOA_RADIATION}: use a dataset in the official "
            "layout (coordinates datetime(batch, time), lat, lon)."
        )
    when = dataset["datetime"]
    values = toa_incident_solar_radiation(
        when.values.reshape(-1), dataset["lat"].values, dataset["lon"].values
    )  # [B*T, n_lat, n_lon]
    values = values.reshape(when.shape + values.shape[1:])
    return dataset.assign({TOA_RADIATION: (when.dims + ("lat", "lon"), values)})
