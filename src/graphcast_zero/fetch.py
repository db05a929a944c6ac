"""fetch-data: the bucket (or a mirror) -> the data folder, verified, atomic, resumable, parallel.

:func:`fetch_data` lists a remote (:mod:`graphcast_zero.remotes`) into a
:mod:`graphcast_zero.catalog`, plans a model bundle (checkpoint, three statistics files, one
fitting example dataset), shows sizes and checks disk space, then fetches the files in parallel.
Each file goes to a hidden ``.NAME.<version>.part`` beside its final name, is checked against the
server's size and checksum, and only then renamed into place, so a file under its final name is
always complete. A small record in ``<data>/cache/verified/`` lets the next run skip it without
hashing it again.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import re
import shutil
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from graphcast_zero import catalog as cat
from graphcast_zero.errors import FetchError, InputError
from graphcast_zero.paths import STATS_FILES, DataPaths, resolve_data_dir
from graphcast_zero.remotes import (
    AUTODL_PROXY_FILE,
    CONNECT_TIMEOUT,
    Remote,
    apply_proxies,
    make_remote,
    read_proxy_file,
)

CHUNK_SIZE = 16 * 2**20
OPEN_DATA = "ecmwf-open-data"
# Checksums in order of preference: the first one the server reports is verified.
ALGORITHMS = ("md5", "sha256", "crc32c", "git-sha1")


class _Digest:
    """An incremental checksum, rendered in the server's encoding (base64 for GCS, hex for HF)."""

    def __init__(self, algorithm: str, size: int):
        import google_crc32c

        makers = {"md5": hashlib.md5, "sha256": hashlib.sha256, "git-sha1": hashlib.sha1}
        self.algorithm = algorithm
        self._hash = makers[algorithm]() if algorithm in makers else google_crc32c.Checksum()
        if algorithm == "git-sha1":
            self._hash.update(b"blob %d\0" % size)  # git hashes a header, then the content

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def value(self) -> str:
        digest = self._hash.digest()
        if self.algorithm in ("md5", "crc32c"):
            return base64.b64encode(digest).decode()
        return digest.hex()


def _checksum(remote: cat.RemoteFile) -> tuple[Optional[str], Optional[str]]:
    """The (algorithm, value) to verify against; (None, None) if the server gives none."""
    for algorithm in ALGORITHMS:
        if remote.checksums.get(algorithm):
            return algorithm, remote.checksums[algorithm]
    return None, None


def _hash_file(path: Path, algorithm: str, size: int) -> str:
    digest = _Digest(algorithm, size)
    with open(path, "rb") as file:
        while block := file.read(CHUNK_SIZE):
            digest.update(block)
    return digest.value()


def _glob_escape(name: str) -> str:
    """Escapes glob metacharacters in a file name."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def safe_destination(paths: DataPaths, entry: cat.Entry) -> Path:
    """The local path of a catalog entry; refuses any name that could land outside its folder."""
    folder = (paths.root / entry.kind).resolve()
    target = (folder / entry.file_name).resolve()
    if not cat.is_safe_file_name(entry.file_name) or target.parent != folder:
        raise FetchError(
            f"refused object {entry.remote.name!r}: its name would write outside {folder}; "
            "the bucket or mirror is not serving GraphCast files as expected"
        )
    return target


def _record_path(paths: DataPaths, entry: cat.Entry) -> Path:
    return paths.cache / "verified" / entry.kind / f"{entry.file_name}.txt"


def _record(path: Path, entry: cat.Entry) -> str:
    """What a verified file looked like: size, modification time and the remote checksum."""
    stat = path.stat()
    algorithm, expected = _checksum(entry.remote)
    return f"{stat.st_size} {stat.st_mtime_ns} {algorithm} {expected}\n"


def _write_record(paths: DataPaths, entry: cat.Entry, path: Path) -> None:
    record = _record_path(paths, entry)
    record.parent.mkdir(parents=True, exist_ok=True)
    temporary = record.with_name(f".{record.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(_record(path, entry))
    os.replace(temporary, record)


def local_state(paths: DataPaths, entry: cat.Entry, rehash: bool = True) -> str:
    """``verified``, ``missing``, ``partial``, ``corrupt``, or (without rehash) ``unverified``.

    A file is verified when its size matches and either the record written when it was verified
    still matches (size, modification time, remote checksum) or, with ``rehash``, its content
    hashes to the remote checksum (files placed by hand are adopted that way).
    """
    path = safe_destination(paths, entry)
    if not path.exists():
        parts = path.parent.glob(f".{_glob_escape(path.name)}.*.part")
        return "partial" if any(parts) else "missing"
    if path.stat().st_size != entry.remote.size:
        return "corrupt"
    record = _record_path(paths, entry)
    if record.exists() and record.read_text() == _record(path, entry):
        return "verified"
    if not rehash:
        return "unverified"
    algorithm, expected = _checksum(entry.remote)
    if algorithm and _hash_file(path, algorithm, entry.remote.size) != expected:
        return "corrupt"
    _write_record(paths, entry, path)
    return "verified"


@dataclasses.dataclass(frozen=True)
class FileResult:
    """What happened to one file: ``present`` (already verified), ``downloaded``, ``resumed``,
    or ``written`` (demo bundle; no catalog entry)."""

    entry: Optional[cat.Entry]
    path: Path
    status: str
    fetched_bytes: int


class _Cancelled(Exception):
    """Raised in a worker after another one failed or the user pressed Ctrl-C."""


def _part_path(path: Path, entry: cat.Entry) -> Path:
    # The remote version is in the name: a part of another version is never resumed.
    version = f"{entry.remote.size} {sorted(entry.remote.checksums.items())}"
    return path.with_name(f".{path.name}.{hashlib.sha1(version.encode()).hexdigest()[:12]}.part")


def _download(
    remote: Remote,
    entry: cat.Entry,
    part: Path,
    chunk_size: int,
    progress: Callable[[int], None],
    cancel: threading.Event,
) -> int:
    """Appends the rest of ``entry`` to ``part``; returns the offset it resumed from."""
    size = entry.remote.size
    offset = part.stat().st_size if part.exists() else 0
    if offset > size:
        part.unlink()
        offset = 0
    progress(offset)
    with open(part, "ab") as out:
        try:
            for chunk in remote.stream(entry.remote.name, offset, size, chunk_size):
                if cancel.is_set():
                    raise _Cancelled
                out.write(chunk)
                progress(len(chunk))
        except _Cancelled:
            if out.tell() == 0:
                part.unlink()  # stopped before any byte: nothing worth resuming
            raise
        except FetchError:
            raise
        except Exception as error:  # each client fails differently: aiohttp, requests, OSError
            raise FetchError(
                f"download of {entry.remote.name} interrupted at {out.tell()} of {size} bytes "
                f"({type(error).__name__}: {error}); run fetch-data again to resume"
            ) from error
        finally:
            out.flush()
            os.fsync(out.fileno())
    return offset


def _problem(part: Path, entry: cat.Entry) -> Optional[str]:
    """Why a downloaded part is not the remote file, or None."""
    size = part.stat().st_size
    if size != entry.remote.size:
        return f"size mismatch (got {size} bytes, the server lists {entry.remote.size})"
    algorithm, expected = _checksum(entry.remote)
    got = _hash_file(part, algorithm, size) if algorithm else expected
    if got != expected:
        return f"checksum mismatch ({algorithm} {got}, the server lists {expected})"
    return None


def fetch_entry(
    remote: Remote,
    entry: cat.Entry,
    paths: DataPaths,
    chunk_size: int = CHUNK_SIZE,
    progress: Callable[[int], None] = lambda n: None,
    cancel: Optional[threading.Event] = None,
) -> FileResult:
    """Makes one catalog entry present and verified in the data folder.

    Skips a verified file; otherwise downloads it (resuming a ``.part`` of the same remote
    version), checks size and checksum and renames it into place. A stale or corrupt local file
    stays untouched until its verified replacement is renamed over it.

    Raises:
      FetchError: the name is unsafe, the download failed, or the content does not match the
        server's size or checksum (the download is then discarded).
    """
    cancel = cancel or threading.Event()
    path = safe_destination(paths, entry)
    if local_state(paths, entry) == "verified":
        progress(entry.remote.size)
        return FileResult(entry, path, "present", 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(path, entry)
    for stale in path.parent.glob(f".{_glob_escape(path.name)}.*.part"):
        if stale != part:
            stale.unlink()
    resumed_from = _download(remote, entry, part, chunk_size, progress, cancel)
    problem = _problem(part, entry)
    if problem and resumed_from:
        # The kept part may be from an older download gone wrong: retry once from the start.
        part.unlink()
        progress(-entry.remote.size)
        resumed_from = _download(remote, entry, part, chunk_size, progress, cancel)
        problem = _problem(part, entry)
    if problem:
        part.unlink()
        raise FetchError(
            f"{problem} for {entry.remote.name} from {remote.describe()}; the download was "
            "discarded: run fetch-data again, or use another --endpoint / --source"
        )
    os.replace(part, path)
    _write_record(paths, entry, path)
    status = "resumed" if resumed_from else "downloaded"
    return FileResult(entry, path, status, entry.remote.size - resumed_from)


def plan_bundle(
    catalog: cat.Catalog,
    model: cat.PublishedModel,
    dataset: str = "auto",
    steps: Optional[int] = None,
) -> list[cat.Entry]:
    """The files a model needs: its checkpoint, the three statistics files, an example dataset.

    Args:
      catalog: what the remote offers.
      model: the model to fetch.
      dataset: a dataset file name, ``auto`` for the best fit, or ``none`` for no dataset.
      steps: forecast steps the dataset must cover.

    Raises:
      FetchError: the remote lacks a needed file, or the dataset name is refused as unsafe.
      InputError: the named dataset does not exist or does not fit the model.
    """
    params = catalog.entry("params", model.file_name)
    if params is None:
        raise FetchError(
            f"the remote has no params/{model.file_name}: check --model and --endpoint"
        )
    if catalog.missing_stats():
        raise FetchError(f"the remote lacks stats/{', stats/'.join(catalog.missing_stats())}")
    entries = [params, *(catalog.stats[name] for name in STATS_FILES)]
    if dataset == "none":
        return entries
    if dataset == "auto":
        dataset = catalog.choose_dataset(model, steps).file_name
    if not cat.is_safe_file_name(dataset):
        raise FetchError(
            f"refused dataset name {dataset!r}: it would write outside the data folder"
        )
    entry = catalog.entry("dataset", dataset)
    if entry is None:
        raise InputError(f"the remote has no dataset/{dataset}: see `invoke fetch-data --list`")
    parsed = cat.parse_dataset_name(dataset)
    misfit = cat.dataset_misfit(model, parsed, steps) if parsed else "name not understood"
    if misfit:
        raise InputError(
            f"dataset {dataset} does not fit model {model.key!r}: {misfit}; "
            "pick one that fits in `invoke fetch-data --list`"
        )
    return [*entries, entry]


def check_disk_space(paths: DataPaths, needed: int, margin: int = 64 * 2**20) -> None:
    """Raises FetchError when the data folder's disk cannot take ``needed`` more bytes."""
    existing = paths.root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if needed + margin > free:
        raise FetchError(
            f"not enough disk space in {paths.root}: {cat.human_size(needed)} to download, "
            f"{cat.human_size(free)} free; free some space or use --data-dir on a larger disk "
            "(on AutoDL: /root/autodl-tmp)"
        )


def _progress_bars(entries: Sequence[cat.Entry], enabled: bool):
    """An overall byte bar, and a maker of per-file bars that also feed it (tqdm)."""
    from tqdm.auto import tqdm

    style = dict(unit="B", unit_scale=True, unit_divisor=1024, disable=not enabled)
    overall = tqdm(total=sum(e.remote.size for e in entries), desc="total", position=0, **style)
    lock = threading.Lock()

    def for_file(index: int, entry: cat.Entry):
        name = entry.file_name[:40]
        bar = tqdm(total=entry.remote.size, desc=name, position=index + 1, leave=False, **style)

        def update(n: int) -> None:
            with lock:
                bar.update(n)
                overall.update(n)

        return bar, update

    return overall, for_file


def download_all(
    remote: Remote,
    entries: Sequence[cat.Entry],
    paths: DataPaths,
    workers: int = 4,
    progress: bool = True,
    chunk_size: int = CHUNK_SIZE,
) -> list[FileResult]:
    """Fetches entries in parallel; the first failure (or Ctrl-C) stops the others.

    Stopped files keep their ``.part`` and resume on the next run.
    """
    cancel = threading.Event()
    overall, bar_for = _progress_bars(entries, progress)

    def one(index: int, entry: cat.Entry) -> FileResult:
        bar, update = bar_for(index, entry)
        try:
            return fetch_entry(remote, entry, paths, chunk_size, update, cancel)
        finally:
            bar.close()

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(entries)))) as pool:
        futures = [pool.submit(one, index, entry) for index, entry in enumerate(entries)]
        try:
            return [future.result() for future in futures]
        except BaseException:
            cancel.set()
            for future in futures:
                future.cancel()
            raise
        finally:
            overall.close()


@dataclasses.dataclass(frozen=True)
class FetchReport:
    """The outcome of :func:`fetch_data`: where files went and what happened to each."""

    source: str
    paths: DataPaths
    files: tuple[FileResult, ...] = ()
    listing: Optional[str] = None


def _list(
    remote: Remote,
    catalog: cat.Catalog,
    model: cat.PublishedModel,
    paths: DataPaths,
    steps: Optional[int],
    log: Callable[[str], None],
) -> FetchReport:
    tables = (catalog.params, catalog.stats, catalog.datasets)
    entries = [entry for table in tables for entry in table.values()]
    local = {e.relative_path: local_state(paths, e, rehash=False) for e in entries}
    listing = cat.format_listing(catalog, model, local, steps)
    log(f"{remote.describe()}  (local: {paths.root})\n{listing}")
    return FetchReport("list", paths, listing=listing)


def _fetch_demo(paths: DataPaths, log: Callable[[str], None]) -> FetchReport:
    from graphcast_zero import synthetic

    written = synthetic.write_demo_bundle(paths, log=log)
    results = (FileResult(None, path, "written", path.stat().st_size) for path in written)
    return FetchReport("demo", paths, tuple(results))


@dataclasses.dataclass(frozen=True)
class Era5Options:
    """What ``fetch-data --source era5`` builds (see :func:`graphcast_zero.sources.era5_fetch.fetch_era5`).

    Attributes:
      init: the initialisation time t0, e.g. ``2023-06-01T06``, or ``latest``.
      steps: 6-hour targets after t0 (None: 4).
      resolution: grid spacing in degrees (None: the model's).
      levels: 13 or 37 pressure levels (None: the model's).
      store: ``auto``, ``arco``, ``wb2``, a ``gs://`` address or a local store.
    """

    init: str = "latest"
    steps: Optional[int] = None
    resolution: Optional[float] = None
    levels: Optional[int] = None
    store: str = "auto"


def _bundle_fetcher(
    paths: DataPaths, endpoint: Optional[str], workers: int, progress: bool
) -> tuple[Callable[[cat.PublishedModel], None], list[FileResult]]:
    """A fetcher of a model's checkpoint and statistics from the bucket, and its results."""
    bundle: list[FileResult] = []

    def fetch_bundle(fitting: cat.PublishedModel) -> None:
        remote = make_remote("gcs", endpoint)
        remote.probe()
        entries = plan_bundle(cat.Catalog.from_files(remote.list()), fitting, "none")
        needed = sum(e.remote.size for e in entries if local_state(paths, e, False) != "verified")
        check_disk_space(paths, needed)
        bundle.extend(download_all(remote, entries, paths, workers, progress))

    return fetch_bundle, bundle


def _fetch_era5(
    paths: DataPaths,
    model: cat.PublishedModel,
    options: Era5Options,
    endpoint: Optional[str],
    workers: int,
    progress: bool,
    log: Callable[[str], None],
) -> FetchReport:
    """The dataset from an ERA5 store, with the model's checkpoint and statistics when it fits."""
    from graphcast_zero.sources.era5_fetch import fetch_era5

    fetch_bundle, bundle = _bundle_fetcher(paths, endpoint, workers, progress)
    path = fetch_era5(
        paths, model=model.key, init=options.init, steps=options.steps,
        resolution=options.resolution, levels=options.levels, store=options.store,
        endpoint=endpoint, workers=workers, progress=progress, log=log,
        fetch_bundle=fetch_bundle,
    )  # fmt: skip
    written = FileResult(None, path, "written", path.stat().st_size)
    return FetchReport("era5", paths, (*bundle, written))


@dataclasses.dataclass(frozen=True)
class OpenDataOptions:
    """What ``fetch-data --source ecmwf-open-data`` builds (see
    :func:`graphcast_zero.sources.open_data_fetch.fetch_open_data`).

    Attributes:
      init: the initialisation time t0 (a 00/06/12/18 UTC run), or ``latest``.
      steps: 6-hour steps to forecast (None: 40).
      resolution: grid spacing in degrees (None: the model's).
      mirror: ``ecmwf``, ``aws``, ``azure``, ``google`` or an http(s) URL of a copy.
    """

    init: str = "latest"
    steps: Optional[int] = None
    resolution: Optional[float] = None
    mirror: str = "ecmwf"


def _fetch_open_data(
    paths: DataPaths,
    model: cat.PublishedModel,
    options: OpenDataOptions,
    endpoint: Optional[str],
    workers: int,
    progress: bool,
    log: Callable[[str], None],
) -> FetchReport:
    """A forecast-only dataset from ECMWF's open data, with the model's checkpoint and
    statistics from the bucket when it fits."""
    from graphcast_zero.sources.open_data_fetch import fetch_open_data

    fetch_bundle, bundle = _bundle_fetcher(paths, endpoint, workers, progress)
    path = fetch_open_data(
        paths, model=model.key, init=options.init, steps=options.steps,
        resolution=options.resolution, mirror=options.mirror, log=log, fetch_bundle=fetch_bundle,
    )  # fmt: skip
    written = FileResult(None, path, "written", path.stat().st_size)
    return FetchReport(OPEN_DATA, paths, (*bundle, written))


def fetch_data(
    model: Optional[str] = None,
    dataset: str = "auto",
    steps: Optional[int] = None,
    data_dir: Optional[str | os.PathLike | DataPaths] = None,
    source: str = "gcs",
    endpoint: Optional[str] = None,
    hf_repo: Optional[str] = None,
    list_only: bool = False,
    autodl_proxy: bool = False,
    workers: int = 4,
    progress: bool = True,
    log: Callable[[str], None] = print,
    remote: Optional[Remote] = None,
    chunk_size: int = CHUNK_SIZE,
    connect_timeout: float = CONNECT_TIMEOUT,
    era5: Optional[Era5Options] = None,
    open_data: Optional[OpenDataOptions] = None,
) -> FetchReport:
    """``invoke fetch-data``: list the remote, fetch a model bundle, write the demo bundle, or
    build a dataset for any date from an ERA5 store, or for today from ECMWF's open data.

    Args:
      model: ``small``, ``full`` or ``operational`` (None: ``small``; ``operational`` for
        ``ecmwf-open-data``).
      dataset: an example dataset's file name, ``auto`` (the best fit) or ``none``.
      steps: forecast steps the dataset must cover (None: any; ``auto`` then prefers 4).
      data_dir: the data folder (default: :func:`graphcast_zero.paths.resolve_data_dir`).
      source: ``gcs`` (the bucket or ``endpoint``), ``hf`` (Hugging Face mirrors), ``demo``,
        ``era5`` (a dataset built from an ERA5 Zarr store, :class:`Era5Options`) or
        ``ecmwf-open-data`` (a forecast-only dataset from the IFS analyses,
        :class:`OpenDataOptions`).
      endpoint: a GCS-compatible URL for ``gcs`` and ``era5``; a Hub URL for ``hf`` (else
        ``HF_ENDPOINT``).
      hf_repo: the Hugging Face dataset repository mirroring ``dataset/`` and ``stats/``.
      list_only: log the catalog table instead of downloading.
      autodl_proxy: take proxy settings from AutoDL's ``/etc/network_turbo`` first.
      workers: parallel downloads (``era5``: parallel chunk reads).
      progress: show tqdm progress bars.
      log: where messages go.
      remote: a remote to use instead of building one from ``source`` and ``endpoint``.
      chunk_size: bytes per read.
      connect_timeout: seconds before a silent remote counts as unreachable.
      era5: with ``source="era5"``: the init time, steps, grid, levels and store.
      open_data: with ``source="ecmwf-open-data"``: the init time, steps, grid and mirror.

    Raises:
      FetchError: unreachable remote, missing or refused files, bad downloads, no disk space.
      InputError: unknown model or source, or a dataset that does not fit the model.
    """
    paths = data_dir if isinstance(data_dir, DataPaths) else resolve_data_dir(data_dir)
    chosen = cat.model_by_key(model or ("operational" if source == OPEN_DATA else "small"))
    if source == "demo" and remote is None:
        return _fetch_demo(paths, log)
    if autodl_proxy:
        settings = read_proxy_file()
        apply_proxies(settings)
        log(f"Proxy from {AUTODL_PROXY_FILE}: {settings.get('https_proxy', settings)}")
    if source == "era5":
        return _fetch_era5(paths, chosen, era5 or Era5Options(), endpoint, workers, progress, log)
    if source == OPEN_DATA:
        options = open_data or OpenDataOptions()
        return _fetch_open_data(paths, chosen, options, endpoint, workers, progress, log)
    remote = remote or make_remote(source, endpoint, hf_repo, connect_timeout)
    remote.probe()
    catalog = cat.Catalog.from_files(remote.list())
    if list_only:
        return _list(remote, catalog, chosen, paths, steps, log)
    entries = plan_bundle(catalog, chosen, dataset, steps)
    states = [local_state(paths, entry, rehash=False) for entry in entries]
    log(f"Model {chosen.key!r} from {remote.describe()} into {paths.root}:")
    for entry, state in zip(entries, states, strict=True):
        log(f"  {cat.human_size(entry.remote.size):>10}  {state:10}  {entry.relative_path}")
    needed = sum(e.remote.size for e, s in zip(entries, states, strict=True) if s != "verified")
    log(f"  {cat.human_size(needed)} to download" if needed else "  every file is already here")
    check_disk_space(paths, needed)
    results = download_all(remote, entries, paths, workers, progress, chunk_size)
    for result in results:
        log(f"  {result.status:10}  {result.path}")
    return FetchReport(source, paths, tuple(results))
