"""What a hindcast campaign is: its options as given, and the checked plan they resolve to.

:class:`HindcastOptions` holds ``invoke hindcast``'s options as the user gives them (text where
invoke passes text). :func:`init_times`, :func:`chosen_variables` and :func:`chosen_levels` check
them one by one, each turning a bad value into a one-line :class:`~graphcast_zero.errors.InputError`
that names the option. :class:`Campaign` is the resolved plan every worker gets: what to forecast,
from where, and what to keep.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from graphcast_zero.config import ATMOSPHERIC_VARIABLES, STEP, TaskConfig
from graphcast_zero.errors import InputError
from graphcast_zero.hindcast.source import SourceSpec
from graphcast_zero.workflow.options import time_option

DEFAULT_EVERY = "12h"
DEFAULT_STEPS = 40  # 10 days, as GraphCast's published evaluations


@dataclasses.dataclass(frozen=True)
class HindcastOptions:
    """``invoke hindcast``'s options.

    Attributes:
      init_start, init_end: the first and last initialisation times (UTC, e.g. ``2022-01-01T00``).
      every: the spacing of initialisations (``12h``).
      steps: 6-hour forecast steps from each initialisation.
      variables: comma-separated target variables to keep (default: every one the model predicts).
      levels: comma-separated pressure levels to keep, in hPa (default: the model's).
      store: the source: ``auto``, ``arco``, ``wb2``, an ERA5 store's address, or an
        official-layout dataset that spans the campaign.
      endpoint: a GCS-compatible server for ``gs://`` addresses.
      output: the Zarr store to write (default: ``<data>/outputs/hindcast-<start>-<end>.zarr``).
      params, stats_dir: the checkpoint and statistics (default: from the data folder).
      resolution: the grid for a model that fits any grid (resolution 0).
      precision: ``auto``, ``bfloat16`` or ``float32``.
      climatology: a climatology store in WeatherBench2's layout (``hour``, ``dayofyear``) for
        ACC; None computes one from the source over ``climatology_period``.
      climatology_period: ``START/END`` of the computed climatology (default: the first
        initialisation to the last valid time the source holds).
      scheduler: a Dask scheduler address (``tcp://host:8786``); None starts a local cluster.
      workers: workers of the local cluster (default: one per visible GPU, else two on a CPU).
      break_lock: take over a stale lock left by a campaign that died.
    """

    init_start: str
    init_end: str
    every: str = DEFAULT_EVERY
    steps: int = DEFAULT_STEPS
    variables: Optional[str] = None
    levels: Optional[str] = None
    store: str = "auto"
    endpoint: Optional[str] = None
    output: Optional[str] = None
    params: Optional[str] = None
    stats_dir: Optional[str] = None
    resolution: Optional[float] = None
    precision: str = "auto"
    climatology: Optional[str] = None
    climatology_period: Optional[str] = None
    scheduler: Optional[str] = None
    workers: Optional[int] = None
    break_lock: bool = False


@dataclasses.dataclass(frozen=True)
class Campaign:
    """The resolved campaign, as the workers get it.

    Attributes:
      inits: every initialisation time, the store's ``time`` axis.
      steps: forecast steps from each.
      variables: the target variables kept, in store order.
      levels: the pressure levels kept, ascending.
      source: where windows come from.
      output: the Zarr store.
      precision: ``bfloat16``, ``float32`` or ``auto`` (each worker resolves it for its device).
      graphs_folder, compile_folder: caches the workers use when they can reach them.
    """

    inits: pd.DatetimeIndex
    steps: int
    variables: tuple[str, ...]
    levels: tuple[int, ...]
    source: SourceSpec
    output: Path
    precision: str
    graphs_folder: Optional[str] = None
    compile_folder: Optional[str] = None

    @property
    def lead_times(self) -> np.ndarray:
        """``prediction_timedelta``: 6 h, 12 h, …, ``steps`` × 6 h."""
        hours = np.arange(1, self.steps + 1) * int(STEP / pd.Timedelta(hours=1))
        return pd.to_timedelta(hours, unit="h").to_numpy().astype("m8[ns]")

    def index_of(self, init) -> int:
        return int(self.inits.get_loc(pd.Timestamp(init)))


def parse_every(text) -> pd.Timedelta:
    """``--every``: a whole number of hours, at least one (``12h``, ``1d``)."""
    text = str(text).strip()
    # pandas is dropping the lower-case day unit; `1d` is what people type.
    spelled = f"{text[:-1]}D" if text.endswith("d") and text[:-1].isdigit() else text
    try:
        every = pd.Timedelta(spelled)
    except ValueError:
        every = None
    hour = pd.Timedelta(hours=1)
    if every is None or every is pd.NaT or every < hour or every % hour:
        raise InputError(f"--every {text!r} must be a whole number of hours, e.g. 12h or 1d")
    return every


def init_times(start, end, every) -> pd.DatetimeIndex:
    """Every initialisation from ``start`` to ``end`` (inclusive), ``every`` apart.

    Raises:
      InputError: a time or spacing that cannot be read, or an end before the start.
    """
    first, last = time_option(start, "--init-start"), time_option(end, "--init-end")
    spacing = parse_every(every)
    if last < first:
        raise InputError(f"--init-end {last} is before --init-start {first}: swap them")
    return pd.date_range(first, last, freq=spacing)


def chosen_variables(text: Optional[str], task: TaskConfig) -> tuple[str, ...]:
    """``--variables`` as a tuple of the model's target variables (default: all of them)."""
    if not text:
        return tuple(sorted(task.target_variables))
    names = tuple(dict.fromkeys(name.strip() for name in str(text).split(",") if name.strip()))
    unknown = [name for name in names if name not in task.target_variables]
    if unknown or not names:
        raise InputError(
            f"--variables {text!r}: the model predicts {', '.join(sorted(task.target_variables))}"
        )
    return names


def chosen_levels(text, task: TaskConfig, variables: tuple[str, ...]) -> tuple[int, ...]:
    """``--levels`` as ascending pressure levels the model has (default: all of them)."""
    if not any(name in ATMOSPHERIC_VARIABLES for name in variables):
        return ()
    if text is None or str(text).strip() == "":
        return tuple(sorted(int(v) for v in task.pressure_levels))
    try:
        levels = sorted({int(v) for v in str(text).split(",") if v.strip()})
    except ValueError:
        levels = []
    unknown = [level for level in levels if level not in task.pressure_levels]
    if unknown or not levels:
        have = ", ".join(str(v) for v in task.pressure_levels)
        raise InputError(f"--levels {text!r}: choose among the model's levels {have}")
    return tuple(levels)


def positive_steps(steps) -> int:
    """``--steps`` as an integer of at least 1."""
    try:
        value = int(steps)
    except (TypeError, ValueError):
        value = 0
    if value < 1:
        raise InputError(f"--steps must be at least 1, not {steps!r}")
    return value
