"""The network half of fetch-data: where the bucket's files can be listed and read from.

Two remotes present the same view, object names in the bucket's layout (``graphcast/params/…``,
``stats/…``, ``dataset/…``) with sizes and the server's checksums:

- :class:`GcsRemote`: the public ``dm_graphcast`` bucket, read anonymously with gcsfs, or any
  GCS-compatible endpoint (a mirror, a local emulator).
- :class:`HfRemote`: the public Hugging Face mirrors, over the Hub's plain HTTP API: the tree API
  ``{endpoint}/api/{models|datasets}/{repo}/tree/{revision}/{folder}`` for listings and
  ``{endpoint}/[datasets/]{repo}/resolve/{revision}/{path}`` for (ranged) downloads.

Both honour proxies from the environment (on AutoDL, :func:`read_proxy_file` takes them from
``/etc/network_turbo``) and report an unreachable server within seconds. :func:`probe_bucket` is
the one reachability check of the bucket, for fetch-data and for ``invoke doctor``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Optional, Protocol

import requests

from graphcast_zero.catalog import KINDS, RemoteFile
from graphcast_zero.errors import FetchError, InputError

BUCKET = "dm_graphcast"
GCS_ENDPOINT = "https://storage.googleapis.com"
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"  # gcsfs and Google's clients read an emulator's address here
HF_ENDPOINT = "https://huggingface.co"
# Public mirror of the bucket's `dataset/` and `stats/` folders, file names unchanged.
HF_DATASET_REPO = "shermansiu/dm_graphcast_datasets"
# One model repository per published checkpoint, the .npz at its root under the bucket's name.
HF_MODEL_REPOS = (
    "shermansiu/dm_graphcast_small",
    "shermansiu/dm_graphcast",
    "shermansiu/dm_graphcast_operational",
)
AUTODL_PROXY_FILE = "/etc/network_turbo"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
PROBE_READ_TIMEOUT = 15.0  # a server that accepts but never answers counts as unreachable
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy")


class Remote(Protocol):
    """What fetch-data needs from a bucket or a mirror."""

    def describe(self) -> str:
        """Where this remote is, for messages."""

    def probe(self) -> None:
        """Raises FetchError within seconds when the remote cannot be reached."""

    def list(self) -> list[RemoteFile]:
        """The GraphCast objects, named as in the bucket."""

    def stream(self, name: str, offset: int, size: int, chunk_size: int) -> Iterator[bytes]:
        """The bytes of object ``name`` from ``offset`` to its end (``size``), in chunks."""


def unreachable(where: str, reason: object) -> FetchError:
    """The one-line error for a remote that does not answer, with the ways out."""
    return FetchError(
        f"cannot reach {where} ({reason}); offline or blocked? `invoke fetch-data --source demo` "
        "writes an offline demo bundle, `--endpoint URL` uses a GCS mirror, `--source hf` the "
        "Hugging Face mirror (HF_ENDPOINT)"
    )


def _with_scheme(url: str) -> str:
    return (url if re.match(r"^https?://", url) else f"http://{url}").rstrip("/")


def gcs_endpoint(endpoint: Optional[str] = None) -> str:
    """``endpoint``, else an emulator named by ``STORAGE_EMULATOR_HOST``, else Google Cloud
    Storage; with a scheme and without a trailing slash."""
    emulator = os.environ.get(EMULATOR_ENV, "")
    default = emulator if emulator not in ("", "default") else GCS_ENDPOINT
    return _with_scheme(endpoint or default)


def bucket_probe_url(endpoint: Optional[str] = None, bucket: str = BUCKET) -> str:
    """The JSON-API listing of one object: small, and answered by GCS, mirrors and the emulator."""
    return f"{gcs_endpoint(endpoint)}/storage/v1/b/{bucket}/o?maxResults=1"


@dataclasses.dataclass(frozen=True)
class ProbeAnswer:
    """What the bucket said to :func:`probe_bucket`.

    Attributes:
      status: the HTTP status, or None when no answer came.
      reason: why no answer came (empty when one did).
      listing: whether the answer is a GCS object listing (a bucket, not some other server).
    """

    status: Optional[int]
    reason: str = ""
    listing: bool = False


def probe_bucket(
    endpoint: Optional[str] = None,
    *,
    bucket: str = BUCKET,
    timeout: tuple[float, float] = (CONNECT_TIMEOUT, PROBE_READ_TIMEOUT),
    deadline: Optional[float] = None,
) -> ProbeAnswer:
    """Asks the bucket for a one-object listing, with proxies from the environment.

    Args:
      endpoint: as for :func:`gcs_endpoint`.
      bucket: the bucket's name.
      timeout: (connect, read) seconds for the request.
      deadline: seconds after which to give up whatever the request is doing (name lookups
        included, which the request's own timeouts do not cover); default: the two timeouts.
    """
    return probe_url(
        bucket_probe_url(endpoint, bucket),
        timeout=timeout,
        deadline=deadline,
        recognise=lambda text: "storage#objects" in text[:200],
    )


def probe_url(
    url: str,
    *,
    timeout: tuple[float, float] = (CONNECT_TIMEOUT, PROBE_READ_TIMEOUT),
    deadline: Optional[float] = None,
    recognise: Callable[[str], bool] = lambda text: False,
) -> ProbeAnswer:
    """One GET of ``url`` that gives up after ``deadline`` seconds whatever it is doing.

    Args:
      url: what to ask for (proxies come from the environment).
      timeout: (connect, read) seconds for the request.
      deadline: seconds after which to give up (name lookups included, which the request's own
        timeouts do not cover); default: the two timeouts.
      recognise: whether the answer's text is what was expected (sets ``listing``).
    """
    answers: list[ProbeAnswer] = []

    def request() -> None:
        try:
            response = requests.get(url, timeout=timeout)
        except Exception as error:  # any failure means "not reachable"; never kill the thread
            answers.append(ProbeAnswer(None, type(error).__name__))
            return
        answers.append(ProbeAnswer(response.status_code, "", recognise(response.text)))

    limit = sum(timeout) if deadline is None else deadline
    worker = threading.Thread(target=request, daemon=True)
    worker.start()
    worker.join(limit)
    return answers[0] if answers else ProbeAnswer(None, f"no answer within {limit:g} s")


class GcsRemote:
    """The ``dm_graphcast`` bucket (or a GCS-compatible endpoint), read anonymously with gcsfs."""

    def __init__(
        self,
        bucket: str = BUCKET,
        endpoint: Optional[str] = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ):
        import gcsfs.core

        self.bucket = bucket
        self.endpoint = gcs_endpoint(endpoint)
        self.connect_timeout = connect_timeout
        # The plain JSON-API class: gcsfs's package-level class first probes the bucket type over
        # gRPC, which stalls behind HTTP proxies and against emulators. trust_env: use proxies.
        self.fs = gcsfs.core.GCSFileSystem(
            token="anon",
            endpoint_url=self.endpoint,
            skip_instance_cache=True,
            use_listings_cache=False,
            session_kwargs={"trust_env": True},
        )

    def describe(self) -> str:
        return f"gs://{self.bucket} at {self.endpoint}"

    def probe(self) -> None:
        # A plain request with a short connect timeout: gcsfs would retry for minutes.
        answer = probe_bucket(
            self.endpoint, bucket=self.bucket, timeout=(self.connect_timeout, PROBE_READ_TIMEOUT)
        )
        if answer.status is None:
            raise unreachable(self.describe(), answer.reason)
        if answer.status != 200 or not answer.listing:
            raise unreachable(self.describe(), f"HTTP {answer.status} listing the bucket")

    def list(self) -> list[RemoteFile]:
        files = []
        for prefix in ("graphcast/", *(f"{kind}/" for kind in KINDS)):
            try:
                found = self.fs.find(f"{self.bucket}/{prefix}", detail=True)
            except (OSError, ValueError) as error:
                raise unreachable(self.describe(), error) from error
            for info in found.values():
                sums = {"md5": info.get("md5Hash"), "crc32c": info.get("crc32c")}
                name = info["name"].split("/", 1)[1]  # without the bucket
                checksums = {algorithm: value for algorithm, value in sums.items() if value}
                files.append(RemoteFile(name, int(info["size"]), checksums))
        return files

    def stream(self, name: str, offset: int, size: int, chunk_size: int) -> Iterator[bytes]:
        for start in range(offset, size, chunk_size):
            end = min(start + chunk_size, size)
            yield self.fs.cat_file(f"{self.bucket}/{name}", start=start, end=end)


class HfRemote:
    """The public Hugging Face mirrors of the bucket, presented in the bucket's older layout.

    ``dataset/`` and ``stats/`` come from one dataset repository; each model repository's
    ``.npz`` files become ``params/…``. LFS files are checked against their sha256, small files
    against git's blob sha1.
    """

    def __init__(
        self,
        endpoint: Optional[str] = None,
        dataset_repo: str = HF_DATASET_REPO,
        model_repos: Sequence[str] = HF_MODEL_REPOS,
        revision: str = "main",
        connect_timeout: float = CONNECT_TIMEOUT,
    ):
        self.endpoint = _with_scheme(endpoint or os.environ.get("HF_ENDPOINT") or HF_ENDPOINT)
        self.dataset_repo, self.model_repos, self.revision = dataset_repo, model_repos, revision
        self.timeout = (connect_timeout, READ_TIMEOUT)
        self.session = requests.Session()  # trust_env: proxies from the environment
        self._urls: dict[str, str] = {}  # object name -> download URL, learnt by list()

    def describe(self) -> str:
        return f"Hugging Face {self.dataset_repo} at {self.endpoint}"

    def probe(self) -> None:
        url = f"{self.endpoint}/api/datasets/{self.dataset_repo}/tree/{self.revision}/stats"
        self._get(url, timeout=(self.timeout[0], PROBE_READ_TIMEOUT)).close()

    def _get(self, url: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.session.get(url, **kwargs)
        except requests.RequestException as error:
            raise unreachable(self.describe(), type(error).__name__) from error
        if response.status_code >= 400:
            response.close()
            raise unreachable(self.describe(), f"HTTP {response.status_code} for {url}")
        return response

    def _tree(self, repo_type: str, repo: str, folder: str) -> list[dict]:
        """The file entries of one folder, following ``Link: rel="next"`` pages."""
        url = f"{self.endpoint}/api/{repo_type}/{repo}/tree/{self.revision}"
        url += f"/{urllib.parse.quote(folder)}" if folder else ""
        entries = []
        while url:
            response = self._get(url)
            entries += response.json()
            url = response.links.get("next", {}).get("url")
        return [entry for entry in entries if entry.get("type") == "file"]

    def _add(self, repo_type: str, repo: str, entry: dict) -> RemoteFile:
        path = entry["path"]
        name = path if repo_type == "datasets" else f"params/{path}"
        prefix = "datasets/" if repo_type == "datasets" else ""
        quoted = urllib.parse.quote(path)
        self._urls[name] = f"{self.endpoint}/{prefix}{repo}/resolve/{self.revision}/{quoted}"
        lfs = entry.get("lfs")
        checksums = {"sha256": lfs["oid"]} if lfs else {"git-sha1": entry["oid"]}
        return RemoteFile(name, int(entry["size"]), checksums)

    def list(self) -> list[RemoteFile]:
        files = []
        for folder in ("dataset", "stats"):
            entries = self._tree("datasets", self.dataset_repo, folder)
            files += [self._add("datasets", self.dataset_repo, entry) for entry in entries]
        for repo in self.model_repos:
            try:
                entries = self._tree("models", repo, "")
            except FetchError:
                continue  # a missing model mirror only removes that model from the catalog
            checkpoints = [entry for entry in entries if entry["path"].endswith(".npz")]
            files += [self._add("models", repo, entry) for entry in checkpoints]
        return files

    def stream(self, name: str, offset: int, size: int, chunk_size: int) -> Iterator[bytes]:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with self._get(self._urls[name], headers=headers, stream=True) as response:
            skip = offset if response.status_code == 200 else 0  # the server ignored the range
            for chunk in response.iter_content(chunk_size):
                if skip:
                    chunk, skip = chunk[skip:], max(0, skip - len(chunk))
                if chunk:
                    yield chunk


def read_proxy_file(path: str | os.PathLike = AUTODL_PROXY_FILE) -> dict[str, str]:
    """The proxy settings a shell file such as AutoDL's ``/etc/network_turbo`` exports.

    The file is parsed, never executed: only assignments (``export http_proxy=…``, also after
    ``&&`` or ``;``) of the proxy variables are taken.
    """
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise FetchError(
            f"cannot read {path} ({error.strerror}): --autodl-proxy only works on AutoDL"
        ) from error
    assignment = r"(?:^|[\s;&|])(?:export\s+)?([A-Za-z_]+)=(\"[^\"]*\"|'[^']*'|[^\s;&|]+)"
    found = {
        key.lower(): value.strip("\"'")
        for key, value in re.findall(assignment, text)
        if key.lower() in _PROXY_VARIABLES
    }
    if not found:
        raise FetchError(f"{path} sets no http_proxy or https_proxy: --autodl-proxy cannot help")
    return found


def apply_proxies(settings: dict[str, str], environ: Optional[dict] = None) -> None:
    """Exports proxy settings in both spellings (requests and aiohttp read them)."""
    environ = os.environ if environ is None else environ
    for key, value in settings.items():
        environ[key.lower()] = value
        environ[key.upper()] = value


def make_remote(
    source: str,
    endpoint: Optional[str] = None,
    hf_repo: Optional[str] = None,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> Remote:
    """The remote for ``--source gcs`` (the bucket, or ``endpoint``) or ``--source hf``."""
    if source == "gcs":
        return GcsRemote(endpoint=endpoint, connect_timeout=connect_timeout)
    if source == "hf":
        return HfRemote(endpoint, hf_repo or HF_DATASET_REPO, connect_timeout=connect_timeout)
    raise InputError(f"unknown --source {source!r}: use gcs, hf, demo, era5 or ecmwf-open-data")
