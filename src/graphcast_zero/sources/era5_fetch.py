"""``invoke fetch-data --source era5``: a GraphCast dataset for any date from an ERA5 Zarr store.

Opens the candidate stores (ARCO-ERA5, WeatherBench2, or the one ``--store`` names), checks each
against its layout, plans the reads for the requested init time, grid and levels, shows what each
would read, picks the cheapest that covers the request, checks disk space, then converts. The
model's checkpoint and statistics come from the ``dm_graphcast`` bucket as with ``--source gcs``
when the dataset fits the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Optional

import pandas as pd

from graphcast_zero import catalog as cat
from graphcast_zero.config import PRESSURE_LEVELS
from graphcast_zero.errors import GraphCastZeroError, InputError
from graphcast_zero.paths import DataPaths
from graphcast_zero.sources import era5_plan
from graphcast_zero.sources.era5_convert import convert
from graphcast_zero.sources.layouts import KNOWN_LAYOUTS, check_layout, detect_layout
from graphcast_zero.sources.opening import open_dataset

AUTO = "auto"
LATEST = "latest"


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A store that could supply the dataset: its plan, or why it cannot."""

    uri: str
    plan: Optional[era5_plan.ConversionPlan] = None
    store: object = None
    error: Optional[GraphCastZeroError] = None


def store_uris(store: str) -> list[str]:
    """``auto``: every known store; ``arco``/``wb2``: that one; else the address given."""
    if store == AUTO:
        return [layout.url for layout in KNOWN_LAYOUTS.values()]
    if store in KNOWN_LAYOUTS:
        return [KNOWN_LAYOUTS[store].url]
    return [store]


def parse_init(text: str) -> Optional[pd.Timestamp]:
    """``2023-06-01T06`` (any ISO form, UTC) as a timestamp; None for ``latest``."""
    from graphcast_zero.workflow.options import time_option

    if str(text).strip().lower() == LATEST:
        return None
    return time_option(text, "--init", "2023-06-01T06 or latest")


def plan_candidate(
    uri: str, init: Optional[pd.Timestamp], steps: int, resolution: float,
    levels: tuple[int, ...], endpoint: Optional[str],
) -> Candidate:  # fmt: skip
    """Opens a store and plans the request on it (``init`` None: the store's latest time).

    Raises:
      FetchError, InputError: the store cannot be opened, does not follow its layout, or does
        not cover the request.
    """
    store = open_dataset(uri, endpoint=endpoint)
    layout = detect_layout(store, uri)
    check_layout(store, layout, uri)
    init = era5_plan.latest_init(store, layout) if init is None else init
    request = era5_plan.Era5Request(init, steps, resolution, levels)
    return Candidate(uri, era5_plan.plan_conversion(store, layout, uri, request), store)


def choose_candidate(candidates: list[Candidate], latest: bool) -> Candidate:
    """The cheapest store that covers the request (with ``latest``: the newest, then cheapest).

    Raises:
      InputError: none covers it; the message gives each store's reason.
    """
    usable = [c for c in candidates if c.plan is not None]
    if not usable:
        if len(candidates) == 1:
            raise candidates[0].error
        reasons = "; ".join(str(c.error) for c in candidates)
        raise InputError(f"no ERA5 store covers the request: {reasons}")

    def preference(candidate: Candidate):
        newest = -candidate.plan.request.init.value if latest else 0
        return (newest, candidate.plan.chunk_bytes)

    return min(usable, key=preference)


def fetch_era5(
    paths: DataPaths,
    *,
    model: str = "small",
    init: str = LATEST,
    steps: Optional[int] = None,
    resolution: Optional[float] = None,
    levels: Optional[int] = None,
    store: str = AUTO,
    endpoint: Optional[str] = None,
    workers: int = 8,
    progress: bool = True,
    log: Callable[[str], None] = print,
    fetch_bundle: Optional[Callable[[cat.PublishedModel], object]] = None,
):
    """Builds ``<data>/dataset/source-era5_date-…nc`` from an ERA5 store; returns its path.

    Args:
      paths: the data folder.
      model: ``small``, ``full`` or ``operational``: its grid, levels and checkpoint.
      init: the initialisation time t0 (``2023-06-01T06``) or ``latest``.
      steps: 6-hour targets after t0 (default 4).
      resolution, levels: override the model's grid spacing and level count (13 or 37).
      store: ``auto`` (the cheapest covering store), ``arco``, ``wb2``, a ``gs://`` address or a
        local Zarr folder / NetCDF file.
      endpoint: a GCS-compatible URL for ``gs://`` stores (a mirror, an emulator).
      workers: parallel reads.
      progress: show a byte progress bar.
      log: where messages go.
      fetch_bundle: fetches the checkpoint and statistics of a model the dataset fits.

    Raises:
      InputError: bad options, or no store covers the request.
      FetchError: a store cannot be read, or the disk is too small.
    """
    from graphcast_zero.fetch import check_disk_space

    chosen = cat.model_by_key(model)
    steps = cat.DEFAULT_STEPS if not steps else steps
    if steps < 1:
        raise InputError(f"--steps must be at least 1 (got {steps})")
    resolution = float(resolution or chosen.model_config.resolution)
    level_values = _levels(levels, chosen)
    when = parse_init(init)
    candidates = []
    for uri in store_uris(store):
        try:
            candidates.append(plan_candidate(uri, when, steps, resolution, level_values, endpoint))
        except GraphCastZeroError as error:
            candidates.append(Candidate(uri, error=error))
    for candidate in candidates:
        log(_describe(candidate))
    best = choose_candidate(candidates, latest=when is None)
    plan = best.plan
    destination = paths.dataset / plan.request.file_name()
    log(f"Reading {cat.human_size(plan.chunk_bytes)} from {best.uri} "
        f"({plan.layout.title}) into {destination}")  # fmt: skip
    if plan.frames_with_data < len(plan.request.frame_times()):
        log(f"  the store ends at frame {plan.frames_with_data}: the later frames hold no "
            "targets (forecast only)")  # fmt: skip
    check_disk_space(paths, plan.output_bytes())
    fits = _fits(chosen, resolution, level_values)
    if fits and fetch_bundle is not None:
        fetch_bundle(chosen)
    elif not fits:
        log(f"  the dataset does not fit model {chosen.key!r}: fetched the dataset only")
    convert(best.store, plan, destination, workers=workers, progress=progress)
    log(f"  written {destination}")
    return destination


def _levels(levels: Optional[int], model: cat.PublishedModel) -> tuple[int, ...]:
    if not levels:
        return tuple(model.task_config.pressure_levels)
    if int(levels) not in PRESSURE_LEVELS:
        raise InputError(f"--levels must be 13 or 37, not {levels}")
    return PRESSURE_LEVELS[int(levels)]


def _fits(model: cat.PublishedModel, resolution: float, levels: tuple[int, ...]) -> bool:
    wanted = model.model_config.resolution
    same_grid = not wanted or abs(wanted - resolution) < 1e-9
    return same_grid and tuple(model.task_config.pressure_levels) == tuple(levels)


def _describe(candidate: Candidate) -> str:
    if candidate.plan is None:
        return f"  {candidate.uri}: not usable ({candidate.error})"
    plan = candidate.plan
    frames = len(plan.request.frame_times())
    return (
        f"  {candidate.uri}: {cat.human_size(plan.chunk_bytes)} to read for init "
        f"{plan.request.init:%Y-%m-%dT%H}, {plan.frames_with_data}/{frames} frames with data"
    )
