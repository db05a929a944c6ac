"""Does the ERA5 converter reproduce DeepMind's example files? Build one and compare.

:func:`check_converter` fetches an example dataset from the ``dm_graphcast`` bucket (by default
the 1° one of 2022-01-01), builds the same dataset from an ERA5 store with the converter of
``fetch-data --source era5`` (init 06 UTC of that date, the same grid, levels and steps) and prints,
for each variable and level, the largest and the mean absolute difference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_zero import catalog as cat
from graphcast_zero.config import STEP
from graphcast_zero.errors import InputError
from graphcast_zero.paths import DataPaths
from graphcast_zero.sources.era5_convert import convert
from graphcast_zero.sources.era5_fetch import plan_candidate, store_uris
from graphcast_zero.sources.opening import open_dataset

DEFAULT_EXAMPLE = "source-era5_date-2022-01-01_res-1.0_levels-13_steps-01.nc"


def compare(built: xr.Dataset, example: xr.Dataset) -> list[dict]:
    """Max and mean absolute difference per variable and level over the example's frames."""
    rows = []
    for name in example.data_vars:
        if name not in built:
            rows.append({"variable": name, "level": None, "max_abs": None, "mean_abs": None})
            continue
        want = example[name]
        got = built[name].sel(level=want["level"]) if "level" in want.dims else built[name]
        if "time" in want.dims:
            got = got.isel(time=slice(0, want.sizes["time"]))
        levels = want["level"].values if "level" in want.dims else [None]
        for level in levels:
            pick = {"level": level} if level is not None else {}
            diff = np.abs(got.sel(pick).values.astype(np.float64) - want.sel(pick).values)
            rows.append({
                "variable": name, "level": None if level is None else int(level),
                "max_abs": float(np.nanmax(diff)), "mean_abs": float(np.nanmean(diff)),
            })  # fmt: skip
    return rows


def format_rows(rows: list[dict]) -> str:
    """The comparison as an aligned table."""
    lines = [f"{'variable':<30} {'level':>5} {'max |diff|':>12} {'mean |diff|':>12}"]
    for row in rows:
        level = "" if row["level"] is None else str(row["level"])
        if row["max_abs"] is None:
            lines.append(f"{row['variable']:<30} {level:>5} {'missing':>12}")
            continue
        lines.append(
            f"{row['variable']:<30} {level:>5} {row['max_abs']:>12.4g} {row['mean_abs']:>12.4g}"
        )
    return "\n".join(lines)


def check_converter(
    paths: DataPaths,
    *,
    example: str = DEFAULT_EXAMPLE,
    store: str = "arco",
    endpoint: Optional[str] = None,
    workers: int = 8,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Builds ``example`` from ``store`` and compares it with the bucket's file.

    The bucket's file is fetched into ``<data>/dataset`` when absent; the built one goes to
    ``<data>/cache/converter-check``.

    Raises:
      InputError: ``example`` is not an era5 example name.
      FetchError: the bucket or the store cannot be read.
    """
    parsed = cat.parse_dataset_name(example)
    if parsed is None or parsed.source != "era5" or "T" in parsed.date:
        raise InputError(
            f"--example {example!r} is not an ERA5 example of the bucket: use e.g. {DEFAULT_EXAMPLE}"
        )
    example_path = _local_example(paths, example, endpoint, progress)
    init = pd.Timestamp(parsed.date) + STEP
    with open_dataset(example_path) as example:
        levels = tuple(int(v) for v in example["level"].values)
    candidate = plan_candidate(
        store_uris(store)[0], init, parsed.steps, parsed.resolution, levels, endpoint
    )
    built_path = paths.cache / "converter-check" / candidate.plan.request.file_name()
    log(f"Building {example} from {candidate.uri} "
        f"({cat.human_size(candidate.plan.chunk_bytes)} to read)")  # fmt: skip
    convert(candidate.store, candidate.plan, built_path, workers=workers, progress=progress)
    with open_dataset(built_path) as built, open_dataset(example_path) as reference:
        rows = compare(built, reference)
    log(f"Built minus bucket example ({example}):\n{format_rows(rows)}")
    return rows


def _local_example(paths: DataPaths, example: str, endpoint: Optional[str], progress: bool):
    from graphcast_zero.fetch import download_all
    from graphcast_zero.remotes import make_remote

    path = paths.dataset / example
    if path.is_file():
        return path
    remote = make_remote("gcs", endpoint)
    remote.probe()
    entry = cat.Catalog.from_files(remote.list()).entry("dataset", example)
    if entry is None:
        raise InputError(f"the bucket has no dataset/{example}: see `invoke fetch-data --list`")
    download_all(remote, [entry], paths, progress=progress)
    return path
