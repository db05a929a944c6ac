"""Training windows read straight from an ERA5 store: ``run-training --source era5``.

A window is one initialisation time t0 of a range (``--init-start`` … ``--init-end`` every
``--init-every``): the input frames t0-6h and t0 and ``steps`` 6-hour targets after t0, built
exactly as ``fetch-data --source era5`` builds a dataset (the same plan and the same reads,
:mod:`~graphcast_zero.sources.era5_plan` and :func:`~graphcast_zero.sources.era5_convert.read_dataset`)
but in memory and only when the loader asks for that window. Nothing is written to disk and the
store is never read whole, so a range of years trains from the public stores as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Optional

import pandas as pd
import xarray as xr

from graphcast_zero.config import TaskConfig
from graphcast_zero.errors import GraphCastZeroError, InputError
from graphcast_zero.sources import era5_fetch, era5_plan
from graphcast_zero.sources.era5_convert import read_dataset
from graphcast_zero.sources.layouts import StoreLayout
from graphcast_zero.train_loop import Window, make_window


@dataclasses.dataclass(frozen=True)
class InitRange:
    """Initialisation times ``start`` … ``end`` (both included) every ``every``.

    Attributes:
      start, end: the first and last t0 (the last input frame).
      every: their spacing.
      option: the option prefix messages name (``--init`` or ``--validation``).
    """

    start: pd.Timestamp
    end: pd.Timestamp
    every: pd.Timedelta
    option: str = "--init"

    @classmethod
    def parse(cls, start: str, end: str, every: str, option: str = "--init") -> InitRange:
        """The range from option text; a missing, unreadable or empty range is an InputError."""
        if not start or not end:
            raise InputError(
                f"{option}-start and {option}-end are both needed, e.g. {option}-start "
                f"2022-01-01T00 {option}-end 2022-12-31T18"
            )
        first = _time(start, f"{option}-start")
        last = _time(end, f"{option}-end")
        try:
            spacing = pd.Timedelta(every)
        except ValueError:
            spacing = pd.Timedelta(0)
        if spacing <= pd.Timedelta(0):
            raise InputError(f"--init-every {every!r} is not a positive time span such as 6h")
        if last < first:
            raise InputError(f"{option}-end {last} is before {option}-start {first}")
        return cls(first, last, spacing, option)

    def times(self) -> pd.DatetimeIndex:
        return pd.date_range(self.start, self.end, freq=self.every)

    def overlaps(self, other: InitRange) -> bool:
        return self.start <= other.end and other.start <= self.end

    def record(self) -> dict:
        """The range as ``training.json`` records it."""
        return {
            "start": f"{self.start:%Y-%m-%dT%H:%M}",
            "end": f"{self.end:%Y-%m-%dT%H:%M}",
            "every": str(self.every),
        }


def _time(text: str, option: str) -> pd.Timestamp:
    stamp = era5_fetch.parse_init(text)
    if stamp is None:  # "latest" has no place in a training range
        raise InputError(f"{option} must be a time such as 2022-01-01T00, not {text!r}")
    return stamp


@dataclasses.dataclass(frozen=True)
class Era5Store:
    """An opened, checked ERA5 store and the grid and levels windows are built on."""

    store: xr.Dataset
    layout: StoreLayout
    uri: str
    resolution: float
    levels: tuple[int, ...]

    def request(self, init: pd.Timestamp, steps: int) -> era5_plan.Era5Request:
        return era5_plan.Era5Request(init, steps, self.resolution, self.levels)

    def check_covers(self, inits: InitRange, steps: int) -> None:
        """Every window of ``inits`` with ``steps`` targets has data in the store.

        Raises:
          InputError: an initialisation is off the store's time grid, or a window reaches
            outside the store's data (the message names the option to change).
        """
        if inits.every % self.layout.time_step:
            raise InputError(
                f"--init-every {inits.every} is not a multiple of the {self.layout.title} store's "
                f"time step {self.layout.time_step}"
            )
        for when, side in ((inits.start, "start"), (inits.end, "end")):
            try:
                plan = era5_plan.plan_conversion(
                    self.store, self.layout, self.uri, self.request(when, steps)
                )
            except InputError as error:
                raise InputError(f"{inits.option}-{side} {when:%Y-%m-%dT%H}: {error}") from None
            frames = len(plan.request.frame_times())
            if plan.frames_with_data < frames:
                last = plan.request.frame_times()[-1]
                raise InputError(
                    f"{inits.option}-{side} {when:%Y-%m-%dT%H}: its {steps}-step windows need "
                    f"data until {last:%Y-%m-%dT%H} but {self.uri} ends before: choose an earlier "
                    f"{inits.option}-end"
                )


def open_era5_store(
    store: str,
    endpoint: Optional[str],
    inits: InitRange,
    steps: int,
    resolution: float,
    levels: tuple[int, ...],
) -> Era5Store:
    """Opens the store that serves ``inits`` with ``steps``-step windows at the fewest bytes.

    ``store`` is as for ``fetch-data --source era5``: ``auto`` (every known store that covers the
    range), ``arco``, ``wb2``, or an address.

    Raises:
      InputError, FetchError: no store opens, follows its layout and covers the range.
    """
    candidates = []
    for uri in era5_fetch.store_uris(store):
        try:
            candidate = era5_fetch.plan_candidate(
                uri, inits.start, steps, resolution, levels, endpoint
            )
            opened = Era5Store(candidate.store, candidate.plan.layout, uri, resolution, levels)
            opened.check_covers(inits, steps)
            candidates.append(candidate)
        except GraphCastZeroError as error:
            candidates.append(era5_fetch.Candidate(uri, error=error))
    best = era5_fetch.choose_candidate(candidates, latest=False)
    return Era5Store(best.store, best.plan.layout, best.uri, resolution, levels)


class Era5Windows(Sequence[Window]):
    """The windows of ``inits`` with ``steps`` targets each, read from the store when indexed.

    Args:
      source: the opened store, grid and levels.
      task_config: the variables the model reads and predicts.
      inits: the initialisation times, one window each.
      steps: 6-hour targets per window.
    """

    def __init__(self, source: Era5Store, task_config: TaskConfig, inits: InitRange, steps: int):
        self.source, self.task_config, self.steps = source, task_config, steps
        self.inits = inits.times()

    def __len__(self) -> int:
        return len(self.inits)

    def __getitem__(self, index: int) -> Window:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return make_window(self.dataset(index), self.task_config, self.steps)

    def dataset(self, index: int) -> xr.Dataset:
        """The official-layout frames of window ``index`` (t0-6h, t0 and the targets)."""
        source = self.source
        plan = era5_plan.plan_conversion(
            source.store, source.layout, source.uri, source.request(self.inits[index], self.steps)
        )
        return read_dataset(source.store, plan)
