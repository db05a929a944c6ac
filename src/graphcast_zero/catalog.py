"""What the ``dm_graphcast`` bucket holds, and which example dataset fits which model.

Pure bookkeeping, no network: :mod:`graphcast_zero.fetch` lists a bucket (or a mirror) into
:class:`RemoteFile` records, and this module turns them into a :class:`Catalog` of checkpoints,
statistics and example datasets, parses dataset file names and applies the fit rule of the
contract (resolution, level count, precipitation mode, enough steps).

The bucket keeps GraphCast files under ``graphcast/`` (newer layout) and at its top level (older
layout); both are read and the newer copy wins when a file is in both.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Optional

from graphcast_zero.config import DEMO_MODEL, PUBLISHED_MODELS, PublishedModel
from graphcast_zero.errors import InputError
from graphcast_zero.paths import STATS_FILES

KINDS = ("params", "stats", "dataset")
# Newer layout first: the first layout holding a file supplies it.
LAYOUTS = ("graphcast/", "")
DEFAULT_STEPS = 4

MODELS = {**PUBLISHED_MODELS, "demo": DEMO_MODEL}

_DATASET_RE = re.compile(
    r"^source-(?P<source>[a-z0-9]+)_date-(?P<date>\d{4}-\d{2}-\d{2}(?:T\d{2})?)"
    r"_res-(?P<res>\d+(?:\.\d+)?)_levels-(?P<levels>\d+)_steps-(?P<steps>\d+)\.nc$"
)
# Sources whose files carry precipitation as an input field, and those that only need it as a target.
_PRECIP_INPUT_SOURCES = ("era5", "fake")
_PRECIP_OUTPUT_SOURCES = ("hres", "fake")


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One object of the bucket or a mirror.

    Attributes:
      name: object name relative to the bucket root, e.g. ``graphcast/stats/mean_by_level.nc``.
      size: size in bytes.
      checksums: what the server reports, by algorithm: ``md5`` and ``crc32c`` (base64, GCS),
        ``sha256`` or ``git-sha1`` (hex, Hugging Face).
    """

    name: str
    size: int
    checksums: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DatasetName:
    """The fields of an example dataset's file name."""

    source: str
    date: str
    resolution: float
    levels: int
    steps: int
    file_name: str


@dataclasses.dataclass(frozen=True)
class Entry:
    """A catalog file: what it is, where it goes locally, and which remote object supplies it."""

    kind: str
    file_name: str
    remote: RemoteFile

    @property
    def relative_path(self) -> str:
        """The path inside the data folder (bucket file names are kept)."""
        return f"{self.kind}/{self.file_name}"


def parse_dataset_name(file_name: str) -> Optional[DatasetName]:
    """Parses ``source-era5_date-2022-01-01_res-1.0_levels-13_steps-12.nc``; None if it is not one.

    Datasets built from an ERA5 store (``fetch-data --source era5``) carry the first frame's hour
    too (``date-2023-06-01T00``), so they never take the name of the bucket's file for that day.
    """
    match = _DATASET_RE.match(file_name)
    if match is None:
        return None
    return DatasetName(
        source=match["source"],
        date=match["date"],
        resolution=float(match["res"]),
        levels=int(match["levels"]),
        steps=int(match["steps"]),
        file_name=file_name,
    )


def model_by_key(key: str) -> PublishedModel:
    """Looks up ``small``, ``full``, ``operational`` (or ``demo``)."""
    try:
        return MODELS[key]
    except KeyError:
        raise InputError(
            f"unknown model {key!r}: use --model with one of {', '.join(MODELS)}"
        ) from None


def is_safe_file_name(file_name: str) -> bool:
    """Whether a name can only land directly inside its payload folder (no `..`, no path)."""
    return (
        file_name not in ("", ".", "..")
        and "/" not in file_name
        and "\\" not in file_name
        and "\x00" not in file_name
        and not re.match(r"^[A-Za-z]:", file_name)
    )


def dataset_misfit(
    model: PublishedModel, dataset: DatasetName, steps: Optional[int] = None
) -> Optional[str]:
    """Says why a dataset does not fit a model, or returns None when it fits.

    Args:
      model: the model (its resolution, level count and precipitation mode matter).
      dataset: the parsed dataset name.
      steps: the number of forecast steps wanted; None skips that check.
    """
    config, task = model.model_config, model.task_config
    if config.resolution and abs(config.resolution - dataset.resolution) > 1e-9:
        return f"resolution {dataset.resolution:g}° but the model needs {config.resolution:g}°"
    if dataset.levels != len(task.pressure_levels):
        return f"{dataset.levels} levels but the model needs {len(task.pressure_levels)}"
    sources = _PRECIP_INPUT_SOURCES if task.precipitation_input else _PRECIP_OUTPUT_SOURCES
    if dataset.source not in sources:
        mode = "an input" if task.precipitation_input else "output only"
        return (
            f"source {dataset.source} but precipitation is {mode} for this model "
            f"(needs {' or '.join(sources)})"
        )
    if steps is not None and dataset.steps < steps:
        return f"{dataset.steps} steps but {steps} were asked for"
    return None


@dataclasses.dataclass(frozen=True)
class Catalog:
    """The files a bucket offers, by kind and file name, plus the names refused as unsafe."""

    params: Mapping[str, Entry]
    stats: Mapping[str, Entry]
    datasets: Mapping[str, Entry]
    refused: tuple[str, ...] = ()

    @classmethod
    def from_files(cls, files: Iterable[RemoteFile]) -> Catalog:
        """Sorts remote objects into a catalog; the newer ``graphcast/`` copy wins."""
        found: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        rank: dict[tuple[str, str], int] = {}
        refused = []
        for remote in files:
            placed = _place(remote.name)
            if placed is None:
                continue
            layout, kind, file_name = placed
            if not is_safe_file_name(file_name):
                refused.append(remote.name)
                continue
            order = LAYOUTS.index(layout)
            if rank.get((kind, file_name), len(LAYOUTS)) > order:
                rank[kind, file_name] = order
                found[kind][file_name] = Entry(kind, file_name, remote)
        return cls(
            params=found["params"],
            stats=found["stats"],
            datasets=found["dataset"],
            refused=tuple(refused),
        )

    def entry(self, kind: str, file_name: str) -> Optional[Entry]:
        """The entry for a file, or None."""
        table = {"params": self.params, "stats": self.stats, "dataset": self.datasets}[kind]
        return table.get(file_name)

    def missing_stats(self) -> list[str]:
        """Statistics files the model bundle needs but the bucket lacks."""
        return [name for name in STATS_FILES if name not in self.stats]

    def dataset_names(self) -> list[DatasetName]:
        """The example datasets whose names parse, in name order."""
        parsed = (parse_dataset_name(name) for name in sorted(self.datasets))
        return [name for name in parsed if name is not None]

    def choose_dataset(self, model: PublishedModel, steps: Optional[int] = None) -> DatasetName:
        """Picks the best-fitting example dataset for a model.

        Preference: fits; real data over ``fake``; the fewest steps that cover ``steps`` (or
        :data:`DEFAULT_STEPS` when not given, so a multi-step forecast works); the latest date.

        Raises:
          InputError: nothing fits; the message lists why the candidates do not.
        """
        wanted = DEFAULT_STEPS if steps is None else steps
        names = self.dataset_names()
        fitting = [name for name in names if dataset_misfit(model, name) is None]
        if not fitting:
            reasons = "; ".join(
                f"{name.file_name}: {dataset_misfit(model, name)}" for name in names[:4]
            )
            raise InputError(
                f"no example dataset in the bucket fits model {model.key!r} "
                f"({reasons or 'none listed'}); run `invoke fetch-data --list` to see them"
            )

        def preference(name: DatasetName):
            enough = name.steps >= wanted
            return (
                name.source == "fake",
                not enough,
                name.steps if enough else -name.steps,
                _negated_date(name.date),
            )

        best = min(fitting, key=preference)
        if steps is not None and best.steps < steps:
            raise InputError(
                f"no example dataset for model {model.key!r} has {steps} steps "
                f"(the most is {best.steps}): lower --steps"
            )
        return best


def _negated_date(date: str) -> tuple[int, ...]:
    """``2022-01-01`` or ``2022-01-01T06`` (built from an ERA5 store) as negated numbers."""
    return tuple(-int(part) for part in re.split(r"[-T]", date))


def _place(name: str) -> Optional[tuple[str, str, str]]:
    """Splits an object name into (layout, kind, file name); None when it is not a GraphCast file."""
    for layout in LAYOUTS:
        for kind in KINDS:
            prefix = f"{layout}{kind}/"
            if name.startswith(prefix) and len(name) > len(prefix):
                return layout, kind, name[len(prefix) :]
    return None


def human_size(num_bytes: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    if abs(num_bytes) < 1024:
        return f"{num_bytes:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        num_bytes /= 1024
        if abs(num_bytes) < 1024:
            return f"{num_bytes:.1f} {unit}"
    return f"{num_bytes / 1024:.1f} TiB"


def _listing_row(
    entry: Entry, model: PublishedModel, state: str, steps: Optional[int]
) -> tuple[tuple[str, ...], Optional[str]]:
    """One row of the listing, and why the file does not fit ``model`` (datasets only)."""
    fields, reason = ("", "", "", ""), None
    fits = "yes" if entry.kind == "stats" or entry.file_name == model.file_name else ""
    if entry.kind == "dataset":
        parsed = parse_dataset_name(entry.file_name)
        reason = dataset_misfit(model, parsed, steps) if parsed else "name not understood"
        fits = "no" if reason else "yes"
        if parsed:
            fields = (parsed.source, str(parsed.resolution), str(parsed.levels), str(parsed.steps))
    size = human_size(entry.remote.size)
    return (entry.kind, size, state, fits, *fields, entry.file_name), reason


def format_listing(
    catalog: Catalog, model: PublishedModel, local: Mapping[str, str], steps: Optional[int] = None
) -> str:
    """A plain-text table of the catalog, what is local, and which datasets fit ``model``.

    File names come last (checkpoint names are long); why a dataset does not fit is listed below
    the table.

    Args:
      catalog: what the bucket offers.
      model: the model whose fit is shown.
      local: state of each file already in the data folder, by ``kind/file_name``.
      steps: forecast steps wanted, for the fit column.
    """
    header = ("kind", "size", "local", f"fits {model.key}", "source", "res", "levels", "steps")
    rows, reasons = [(*header, "file")], []
    for table in (catalog.params, catalog.stats, catalog.datasets):
        for name in sorted(table):
            entry = table[name]
            row, reason = _listing_row(entry, model, local.get(entry.relative_path, "-"), steps)
            rows.append(row)
            reasons += [f"  {name}: {reason}"] if reason else []
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) + 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines = [line.rstrip() for line in lines]
    if reasons:
        lines += [f"Datasets that do not fit model {model.key!r}:", *reasons]
    refused = "refused (would write outside the data folder)"
    lines += [f"{refused}: {name!r}" for name in catalog.refused]
    return "\n".join(lines)
