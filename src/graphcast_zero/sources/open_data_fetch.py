"""``invoke fetch-data --source ecmwf-open-data``: a forecast-only dataset from today's analyses.

GraphCast_operational starts from two HRES analyses, t0-6h and t0. Both are step 0 of an IFS run
on ECMWF's open data (:mod:`~graphcast_zero.sources.open_data`). This module downloads the fields
the model reads from the two runs, decodes them (:mod:`~graphcast_zero.sources.open_data_grib`),
converts them to the official layout (the model's grid selected from the 0.25° points, latitudes
ascending, geopotential from geopotential height, the statics, TISR computed for every frame) and
writes ``<data>/dataset/source-hres_date-<t0-6h>_res-…_levels-13_steps-NN.nc`` with ``steps``
target frames that hold no data (NaN, no disk): a forecast-only dataset that ``run-inference``
picks for the operational checkpoint. Precipitation is no input of that model: its variable is
there, without data, as for every target of a forecast-only dataset.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from graphcast_zero import catalog as cat
from graphcast_zero.atomic import atomic_path
from graphcast_zero.config import STATIC_VARIABLES
from graphcast_zero.errors import InputError
from graphcast_zero.paths import DataPaths
from graphcast_zero.sources import open_data
from graphcast_zero.sources.era5_fetch import LATEST, parse_init
from graphcast_zero.sources.era5_plan import model_grid_indices
from graphcast_zero.sources.official_file import (
    DatasetRequest,
    create_official_file,
    put_computed_solar,
    put_field,
)
from graphcast_zero.sources.open_data_grib import GribField, GribGrid, read_fields

DEFAULT_MODEL = "operational"
DEFAULT_STEPS = 40  # 10 days
SOURCE = "hres"  # the IFS analysis: the file name that fits the operational model
POINTS_0P25 = 721 * 1440  # the open data's grid, for the disk estimate before anything is read
Log = Callable[[str], None]


def fetch_open_data(
    paths: DataPaths,
    *,
    model: str = DEFAULT_MODEL,
    init: str = LATEST,
    steps: Optional[int] = None,
    resolution: Optional[float] = None,
    mirror: str = open_data.DEFAULT_MIRROR,
    log: Log = print,
    fetch_bundle: Optional[Callable[[cat.PublishedModel], object]] = None,
    retry_after: float = open_data.RETRY_AFTER_S,
) -> Path:
    """Builds ``<data>/dataset/source-hres_date-…nc`` from ECMWF's open data; returns its path.

    The client draws a progress bar per download itself.

    Args:
      paths: the data folder.
      model: a model whose precipitation is output only (``operational``): its grid and levels.
      init: the initialisation time t0 (``2026-12-01T06``, on the 00/06/12/18 UTC runs) or
        ``latest`` (the newest run the mirror holds).
      steps: 6-hour steps to forecast (default 40: 10 days); their frames hold no data.
      resolution: another grid spacing (a multiple of 0.25°); the checkpoint is then not fetched.
      mirror: ``ecmwf``, ``aws``, ``azure``, ``google`` or an http(s) URL of a copy.
      log: where messages go.
      fetch_bundle: fetches the checkpoint and statistics of a model the dataset fits.
      retry_after: seconds between tries of a failed request.

    Raises:
      InputError: bad options, a run the mirror does not have, fields missing or on another grid.
      FetchError: the mirror does not answer, a download stayed incomplete, or the disk is full.
    """
    from graphcast_zero.fetch import check_disk_space

    chosen, steps, resolution, when = _checked_options(model, init, steps, resolution)
    client = open_data.OpenDataClient(mirror, retry_after=retry_after)
    where = f"{open_data.describe(client.mirror)} ({client.url})"
    if when is None:
        when = client.latest()
        log(f"Newest run on {where}: {when:%Y-%m-%dT%H}")
    levels = tuple(int(level) for level in chosen.task_config.pressure_levels)
    request = DatasetRequest(when, steps, resolution, levels, source=SOURCE)
    destination = paths.dataset / request.file_name()
    log(f"Analyses {request.frame_times()[0]:%Y-%m-%dT%H} and {when:%Y-%m-%dT%H} from {where} "
        f"into {destination}")  # fmt: skip
    check_disk_space(paths, _bytes_needed(request))
    if fetch_bundle is not None and _fits(chosen, resolution):
        fetch_bundle(chosen)
    elif fetch_bundle is not None:
        log(f"  the dataset does not fit model {chosen.key!r}: fetched the dataset only")
    paths.cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".open-data-", dir=paths.cache) as folder:
        files, sizes, urls = _download(client, request, Path(folder), log)
        log(f"  downloaded {cat.human_size(sum(sizes))}")
        _convert(files, request, destination, paths, client, urls)
    log(f"  written {destination} ({steps} steps to forecast, no targets)")
    return destination


def _checked_options(model: str, init: str, steps: Optional[int], resolution: Optional[float]):
    """(model, steps, resolution, init time or None for latest), checked before any download.

    Raises:
      InputError: naming the option and the fix.
    """
    chosen = cat.model_by_key(model)
    if chosen.task_config.precipitation_input:
        raise InputError(
            f"--model {model} reads precipitation as an input, which the open-data analyses do "
            "not hold: use --model operational (the default for --source ecmwf-open-data)"
        )
    steps = DEFAULT_STEPS if not steps else int(steps)
    if steps < 1:
        raise InputError(f"--steps must be at least 1 (got {steps})")
    resolution = float(resolution or chosen.model_config.resolution)
    _check_resolution(resolution)
    when = parse_init(init)
    if when is not None:
        _check_run_time(when)
    return chosen, steps, resolution, when


def _bytes_needed(request: DatasetRequest) -> int:
    """The dataset written (float32) and, at most, the downloads (32 bits a value at 0.25°)."""
    fields = len(open_data.SURFACE) + len(open_data.ATMOSPHERIC) * len(request.levels)
    points = request.lat().size * request.lon().size
    written = 4 * points * (2 * fields + len(STATIC_VARIABLES) + len(request.frame_times()))
    return written + 4 * POINTS_0P25 * (2 * fields + len(STATIC_VARIABLES))


def _check_run_time(when: pd.Timestamp) -> None:
    if when.hour % 6 or when.minute or when.second or when.microsecond:
        raise InputError(
            f"--init {when:%Y-%m-%dT%H:%M} is not the time of an IFS run: the open data's "
            f"analyses are at 00, 06, 12 and 18 UTC, e.g. {when:%Y-%m-%dT}{when.hour // 6 * 6:02d}"
        )
    now = pd.Timestamp.now("UTC").tz_convert(None)
    if when > now:
        raise InputError(
            f"--init {when:%Y-%m-%dT%H} is in the future (it is {now:%Y-%m-%dT%H:%M} UTC): use "
            "--init latest for the newest run"
        )


def _check_resolution(resolution: float) -> None:
    """The model's points must be points of the open data's 0.25° grid (checked again on the
    downloaded grid, which a copy may lay out otherwise)."""
    count = 180 / resolution if resolution > 0 else 0.5
    multiple = resolution / open_data.GRID_SPACING
    if abs(count - round(count)) > 1e-9 or abs(multiple - round(multiple)) > 1e-9:
        raise InputError(
            f"--resolution {resolution:g} must divide 180° and be a multiple of the open data's "
            f"{open_data.GRID_SPACING:g}° spacing, e.g. 0.25 (the operational model's) or 1.0"
        )


def _fits(model: cat.PublishedModel, resolution: float) -> bool:
    wanted = model.model_config.resolution
    return not wanted or abs(wanted - resolution) < 1e-9


def _download(client, request: DatasetRequest, folder: Path, log: Log):
    """Both runs' fields into ``folder``: (files by (run, levtype), byte counts, addresses)."""
    frames = request.frame_times()
    surface = [p.param for p in open_data.SURFACE]
    files, sizes, urls = {}, [], []
    for run in frames[:2]:
        params = surface + ([p.param for p in open_data.STATICS] if run == request.init else [])
        for levtype, names, levels in (
            ("sfc", params, ()),
            ("pl", [p.param for p in open_data.ATMOSPHERIC], request.levels),
        ):
            target = folder / f"{run:%Y%m%d%H}-{levtype}.grib2"
            size, url = client.retrieve(run, levtype, names, target, levels)
            log(f"  {cat.human_size(size):>10}  {url}")
            files[(run, levtype)] = target
            sizes.append(size)
            urls.append(url)
    return files, sizes, urls


class _Fields:
    """The decoded fields of one run, on the model's grid, checked as they arrive."""

    def __init__(self, request: DatasetRequest):
        self.request = request
        self.grid: Optional[GribGrid] = None
        self.where = ""
        self.index: Optional[tuple[np.ndarray, np.ndarray]] = None

    def on_model_grid(self, field: GribField, path: Path) -> np.ndarray:
        """The field's values at the model's points (latitudes ascending), float64.

        Raises:
          InputError: the field is on another grid than the first one read.
        """
        if self.grid is None:
            self.grid, self.where = field.grid, f"{path.name} ({field.describe()})"
            self.index = model_grid_indices(
                field.grid.lat, field.grid.lon, self.request.resolution, self.where
            )
        elif not field.grid.same_as(self.grid):
            raise InputError(
                f"{path.name}: {field.describe()} is on a {field.grid.describe()}, the other "
                f"fields on a {self.grid.describe()}: the download is inconsistent; run "
                "fetch-data again, or try another --mirror"
            )
        lat_index, lon_index = self.index
        return field.values[np.ix_(lat_index, lon_index)]  # [lat, lon]


def _convert(files, request: DatasetRequest, destination: Path, paths, client, urls) -> None:
    """Decodes the downloads into the official file, atomically."""
    import netCDF4

    frames = request.frame_times()
    fields = _Fields(request)
    statics: dict[str, np.ndarray] = {}
    with atomic_path(destination) as partial:
        create_official_file(
            partial, frames, request.lat(), request.lon(), request.levels,
            _attributes(request, client, urls),
        )  # fmt: skip
        with netCDF4.Dataset(partial, "a") as out:
            for frame, run in enumerate(frames[:2]):
                for levtype in ("sfc", "pl"):
                    path = files[(run, levtype)]
                    for name, level, values in _official_fields(path, run, request, fields):
                        if name in STATIC_VARIABLES:
                            statics[name] = values
                            continue
                        index = request.levels.index(level) if level is not None else None
                        put_field(out, name, values, frame, index)
            source = _put_statics(out, statics, request, paths, client)
            out.setncattr("statics_source", source)
            put_computed_solar(out, frames, range(len(frames)), request.lat(), request.lon())


def _official_fields(path: Path, run: pd.Timestamp, request: DatasetRequest, fields: _Fields):
    """Yields (official name, level or None, float32 values on the model grid) of a download,
    after checking it holds every field asked for, of the right run."""
    wanted = {
        (p.param, p.levtype, level): p
        for p in (*open_data.SURFACE, *open_data.STATICS, *open_data.ATMOSPHERIC)
        for level in (request.levels if p.levtype == "pl" else (None,))
    }
    seen = set()
    for field in read_fields(path):
        key = (field.param, field.levtype, field.level)
        if key not in wanted or key in seen:
            continue
        if field.run != run or field.step != 0:
            raise InputError(
                f"{path.name}: {field.describe()} is not step 0 of the {run:%Y-%m-%dT%H} run "
                "asked for: the mirror serves other files under these names; try another --mirror"
            )
        seen.add(key)
        parameter = wanted[key]
        values = fields.on_model_grid(field, path) * parameter.scale  # float64, then rounded once
        yield parameter.name, field.level, values.astype(np.float32)
    levtype = "pl" if path.stem.endswith("pl") else "sfc"
    expected = [k for k in wanted if k[1] == levtype and wanted[k] not in open_data.STATICS]
    missing = [k for k in expected if k not in seen]
    if missing:
        shown = ", ".join(
            f"{param}"
            + (f" {level} hPa" if level else "")
            + f" ({wanted[(param, kind, level)].name})"
            for param, kind, level in missing[:4]
        )
        more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        raise InputError(
            f"the {run:%Y-%m-%dT%H} run's download lacks {shown}{more}, which GraphCast reads: "
            "the mirror does not publish it; try another --mirror"
        )


def _attributes(request: DatasetRequest, client, urls) -> dict:
    frames = request.frame_times()
    return {
        "description": (
            f"IFS HRES analyses (step 0 of the {frames[0]:%Y-%m-%dT%H} and "
            f"{request.init:%Y-%m-%dT%H} UTC runs) from ECMWF open data in the official GraphCast "
            f"layout; {request.steps} target frames without data (a forecast-only dataset)"
        ),
        "source": SOURCE,
        "origin": f"ECMWF open data, {open_data.describe(client.mirror)} ({client.url})",
        "files": " ".join(dict.fromkeys(urls)),
        "init_time": f"{request.init:%Y-%m-%dT%H:%M}",
        "resolution": float(request.resolution),
        "license": "ECMWF open data: CC BY 4.0 (attribute ECMWF)",
    }


def _put_statics(out, statics: dict, request: DatasetRequest, paths: DataPaths, client) -> str:
    """Writes the statics (the open data's, else the bucket example's); returns their source."""
    missing = [p.param for p in open_data.STATICS if p.name not in statics]
    if not missing:
        for name, values in statics.items():
            put_field(out, name, values)
        return (
            f"ECMWF open data ({open_data.describe(client.mirror)}): lsm and z at step 0 of the "
            f"{request.init:%Y-%m-%dT%H} run"
        )
    example = _example_with_statics(paths)
    from graphcast_zero.sources.opening import open_dataset

    with open_dataset(example) as dataset:
        lat_index, lon_index = model_grid_indices(
            dataset["lat"].values, dataset["lon"].values, request.resolution, example.name
        )
        for name in STATIC_VARIABLES:
            values = dataset[name].transpose("lat", "lon").values[np.ix_(lat_index, lon_index)]
            put_field(out, name, np.asarray(values, np.float32))
    return (
        f"the bucket's example dataset {example.name} (the open data lacked {', '.join(missing)})"
    )


def _example_with_statics(paths: DataPaths) -> Path:
    """The bucket's 0.25° example dataset in the data folder, for its static fields.

    Raises:
      InputError: there is none.
    """
    examples = sorted(
        path
        for path in paths.dataset.glob("source-*_res-0.25_*.nc")
        if (parsed := cat.parse_dataset_name(path.name)) and "T" not in parsed.date
    )
    if not examples:
        raise InputError(
            "the open data lacks the statics (lsm, z) and no 0.25° example dataset of the bucket "
            f"is in {paths.dataset} to take them from: fetch one with `invoke fetch-data --model "
            "operational`, or try another --mirror"
        )
    return examples[0]
