"""The machine around the package: what ``invoke setup`` creates and what ``invoke doctor`` checks.

Setup makes the data folders and a Jupyter kernel for the running interpreter. Doctor checks are
plain functions returning :class:`Check` rows (status, detail and a hint for the fix); printing is
left to the caller. Heavy or optional imports (jax, jupyter) happen inside the functions so that
``invoke --list`` stays fast.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from graphcast_zero.errors import InputError
from graphcast_zero.paths import DATA_DIR_ENV, DataPaths

KERNEL_NAME = "graphcast"
OK, WARN, FAIL = "OK", "WARN", "FAIL"
MIN_FREE_BYTES = 5 * 2**30  # the 0.25° checkpoints and example datasets take several GB
SUPPORTED_PYTHON = ((3, 10), (3, 12))
PACKAGES = {"jax": "jax", "jaxlib": "jaxlib", "haiku": "dm-haiku", "xarray": "xarray"}

HINT_INSTALL = (
    'install the project: `.venv/bin/pip install -e ".[dev]"`, then use `.venv/bin/invoke`'
)
HINT_SETUP = "run `invoke setup`"
HINT_FETCH = "run `invoke fetch-data` (offline: `invoke fetch-data --source demo`)"
HINT_ERA5 = (
    "`fetch-data --source era5` reads gs://gcp-public-data-arco-era5 (or gs://weatherbench2): "
    "point --endpoint at a GCS-compatible mirror, or --store at a copy (gs:// or a local folder)"
)
HINT_OPEN_DATA = (
    "`fetch-data --source ecmwf-open-data` downloads today's analyses from there: try "
    "--mirror aws, azure or google (cloud copies), or an http(s) URL of a copy"
)
HINT_OFFLINE = (
    "offline? `invoke fetch-data --source demo` works without network; for a mirror use "
    "`--endpoint URL` or `--source hf`; on AutoDL run `source /etc/network_turbo` first"
)
_KERNEL_NAME_PATTERN = re.compile(r"^[a-z0-9._-]+$", re.IGNORECASE)


# ---------------------------------------------------------------------------------------- setup


@dataclasses.dataclass(frozen=True)
class SetupStep:
    """One thing ``invoke setup`` makes sure of: a folder or the kernel spec."""

    what: str  # "folder" or "kernel"
    target: Path
    needed: bool  # False when it is already in place
    detail: str = ""

    def describe(self, dry_run: bool) -> str:
        """One line saying what was (or would be) done."""
        if not self.needed:
            state = "ok"
        elif dry_run:
            state = "would create" if self.what == "folder" else "would install"
        else:
            state = "created" if self.what == "folder" else "installed"
        detail = f"  {self.detail}" if self.detail else ""
        return f"  {state:<14}{self.what:<8}{self.target}{detail}"


def kernel_display_name(kernel_name: str = KERNEL_NAME) -> str:
    """The name Jupyter and VS Code show, e.g. ``Python 3.11.7 (graphcast)``."""
    return f"Python {platform.python_version()} ({kernel_name})"


def kernel_dir(kernel_name: str = KERNEL_NAME) -> Path:
    """Where the user-level kernel spec lives (honours ``JUPYTER_DATA_DIR``)."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "kernels" / kernel_name


def _wanted_kernel(paths: DataPaths, kernel_name: str) -> dict:
    # The kernel carries the data folder so notebooks (started in notebooks/) find the same one.
    return {
        "executable": sys.executable,
        "display_name": kernel_display_name(kernel_name),
        "env": {DATA_DIR_ENV: str(paths.root)},
    }


def _installed_kernel(kernel_name: str) -> Optional[dict]:
    spec_file = kernel_dir(kernel_name) / "kernel.json"
    try:
        spec = json.loads(spec_file.read_text())
        return {
            "executable": spec["argv"][0],
            "display_name": spec.get("display_name"),
            "env": spec.get("env", {}),
        }
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def plan_setup(paths: DataPaths, kernel_name: str = KERNEL_NAME) -> list[SetupStep]:
    """Lists the folders and the kernel spec, each marked as needed or already in place.

    Raises:
      InputError: if the kernel name is not a valid Jupyter kernel name.
    """
    if not _KERNEL_NAME_PATTERN.match(kernel_name):
        raise InputError(
            f"kernel name {kernel_name!r} is invalid: use letters, digits, '.', '_' or '-'"
        )
    steps = [SetupStep("folder", folder, not folder.is_dir()) for folder in paths.folders()]
    wanted = _wanted_kernel(paths, kernel_name)
    detail = f'"{wanted["display_name"]}" -> {sys.executable}'
    needed = _installed_kernel(kernel_name) != wanted
    steps.append(SetupStep("kernel", kernel_dir(kernel_name), needed, detail))
    return steps


def _install_kernel(paths: DataPaths, kernel_name: str) -> None:
    from ipykernel.kernelspec import install

    wanted = _wanted_kernel(paths, kernel_name)
    install(
        user=True,
        kernel_name=kernel_name,
        display_name=wanted["display_name"],
        env=wanted["env"],
    )


def run_setup(paths: DataPaths, kernel_name: str = KERNEL_NAME, dry_run: bool = False) -> str:
    """Creates the data folders and installs the kernel; idempotent.

    Args:
      paths: the resolved data folder.
      kernel_name: the Jupyter kernel's name.
      dry_run: only report the plan.

    Returns:
      A report, one line per step.

    Raises:
      InputError: if a folder cannot be created or the kernel name is invalid.
    """
    steps = plan_setup(paths, kernel_name)
    for step in steps:
        if not step.needed or dry_run:
            continue
        try:
            if step.what == "folder":
                step.target.mkdir(parents=True, exist_ok=True)
            else:
                _install_kernel(paths, kernel_name)
        except OSError as err:
            fix = (
                f"choose another data folder with --data-dir or {DATA_DIR_ENV}"
                if step.what == "folder"
                else "set JUPYTER_DATA_DIR to a writable folder"
            )
            raise InputError(f"cannot create {step.target} ({err.strerror}): {fix}") from err
    header = "setup (dry run, nothing changed)" if dry_run else "setup"
    lines = [f"{header}: data folder {paths.root}"]
    lines += [step.describe(dry_run) for step in steps]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- doctor


@dataclasses.dataclass(frozen=True)
class Check:
    """One row of the doctor's table. FAIL means something essential is broken."""

    name: str
    status: str
    detail: str
    hint: str = ""


def check_python(version_info: tuple = tuple(sys.version_info)) -> Check:
    """The interpreter's version, against the supported 3.10–3.12."""
    version = ".".join(str(part) for part in version_info[:3])
    detail = f"{version} ({sys.executable})"
    low, high = SUPPORTED_PYTHON
    if low <= tuple(version_info[:2]) <= high:
        return Check("python", OK, detail)
    return Check("python", WARN, detail, "tested with Python 3.10–3.12; create the venv with one")


def check_packages(version_of: Callable[[str], str] = importlib.metadata.version) -> list[Check]:
    """Installed versions of the packages the model needs; a missing one is essential."""
    checks = []
    for name, distribution in PACKAGES.items():
        try:
            checks.append(Check(name, OK, version_of(distribution)))
        except importlib.metadata.PackageNotFoundError:
            checks.append(Check(name, FAIL, f"{distribution} is not installed", HINT_INSTALL))
    return checks


def check_jax(gpu_present: bool) -> Check:
    """Which backend and devices JAX uses; warns when a GPU is there but JAX runs on CPU."""
    try:
        import jax

        devices = jax.devices()
        backend = jax.default_backend()
    except ImportError:
        return Check("jax devices", FAIL, "jax cannot be imported", HINT_INSTALL)
    except RuntimeError as err:
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        return Check(
            "jax devices", FAIL, first_line, "set JAX_PLATFORMS=cpu, or reinstall the GPU extra"
        )
    kinds = sorted({device.device_kind for device in devices})
    detail = f"{backend}: {len(devices)} x {', '.join(kinds)}"
    if backend == "cpu" and gpu_present:
        if os.environ.get("JAX_PLATFORMS"):
            return Check("jax devices", WARN, detail, "a GPU is present: unset JAX_PLATFORMS")
        return Check(
            "jax devices", WARN, detail, 'a GPU is present: `.venv/bin/pip install -e ".[gpu]"`'
        )
    return Check("jax devices", OK, detail)


def detect_gpus(which: Callable[[str], Optional[str]] = shutil.which) -> Optional[list[str]]:
    """The GPUs ``nvidia-smi`` lists ("name, memory" each), or None when there is no nvidia-smi."""
    nvidia_smi = which("nvidia-smi")
    if nvidia_smi is None:
        return None
    query = [nvidia_smi, "--query-gpu=name,memory.total", "--format=csv,noheader"]
    try:
        result = subprocess.run(query, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def check_cuda(gpus: Optional[list[str]], environ: Optional[dict] = None) -> Check:
    """Whether an NVIDIA GPU is visible and not hidden by CUDA_VISIBLE_DEVICES.

    Args:
      gpus: what :func:`detect_gpus` found.
      environ: the environment to read (defaults to ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    note = "" if visible is None else f"; CUDA_VISIBLE_DEVICES={visible!r}"
    if gpus is None:
        return Check(
            "cuda",
            WARN,
            f"no NVIDIA driver (nvidia-smi not found){note}",
            "fine for the demo and GraphCast_small on CPU; the 0.25° models want a GPU",
        )
    if not gpus:
        return Check("cuda", WARN, f"nvidia-smi lists no GPU{note}", "check the driver: nvidia-smi")
    detail = f"{len(gpus)} GPU(s): {'; '.join(gpus)}{note}"
    if visible is not None and visible.strip() in ("", "-1"):
        return Check("cuda", WARN, detail, "CUDA_VISIBLE_DEVICES hides every GPU: unset it")
    return Check("cuda", OK, detail)


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_data_folder(paths: DataPaths) -> Check:
    """Whether the data folder exists and can be written."""
    root = paths.root
    if not root.exists():
        return Check("data folder", WARN, f"{root} does not exist yet", HINT_SETUP)
    if not root.is_dir() or not os.access(root, os.W_OK):
        hint = f"choose a writable folder with --data-dir or {DATA_DIR_ENV}"
        return Check("data folder", FAIL, f"{root} is not a writable folder", hint)
    return Check("data folder", OK, str(root))


def check_disk(paths: DataPaths, min_free: int = MIN_FREE_BYTES) -> Check:
    """Free space on the disk that holds the data folder."""
    where = _existing_ancestor(paths.root)
    free = shutil.disk_usage(where).free
    detail = f"{free / 2**30:.1f} GiB free at {where}"
    if free >= min_free:
        return Check("free disk", OK, detail)
    hint = (
        f"the 0.25° files take several GB: point {DATA_DIR_ENV} at a bigger disk "
        "(AutoDL: /root/autodl-tmp)"
    )
    return Check("free disk", WARN, detail, hint)


def _summarise_files(files: list[Path], noun: str) -> str:
    names = ", ".join(file.name for file in files[:2])
    more = f" and {len(files) - 2} more" if len(files) > 2 else ""
    return f"{len(files)} {noun}: {names}{more}"


def check_data_files(paths: DataPaths) -> list[Check]:
    """Which checkpoints, statistics and example datasets are present in the data folder."""
    checks = []
    params = sorted(paths.params.glob("*.npz"))
    if params:
        checks.append(Check("params", OK, _summarise_files(params, "checkpoint(s)")))
    else:
        checks.append(Check("params", WARN, f"no *.npz in {paths.params}", HINT_FETCH))
    missing = [file.name for file in paths.stats_files() if not file.is_file()]
    if missing:
        detail = f"missing in {paths.stats}: {', '.join(missing)}"
        checks.append(Check("stats", WARN, detail, HINT_FETCH))
    else:
        checks.append(Check("stats", OK, f"all {len(paths.stats_files())} files"))
    datasets = sorted(paths.dataset.glob("*.nc"))
    if datasets:
        checks.append(Check("dataset", OK, _summarise_files(datasets, "file(s)")))
    else:
        checks.append(Check("dataset", WARN, f"no *.nc in {paths.dataset}", HINT_FETCH))
    return checks


def check_kernel(kernel_name: str = KERNEL_NAME) -> Check:
    """Whether the Jupyter kernel spec exists and runs this interpreter."""
    installed = _installed_kernel(kernel_name)
    if installed is None:
        return Check("jupyter kernel", WARN, f"{kernel_name!r} is not installed", HINT_SETUP)
    if installed["executable"] != sys.executable:
        detail = f"{kernel_name!r} runs {installed['executable']}, not this Python"
        return Check("jupyter kernel", WARN, detail, HINT_SETUP)
    return Check("jupyter kernel", OK, f"{installed['display_name']} at {kernel_dir(kernel_name)}")


def check_bucket(
    endpoint: Optional[str] = None,
    timeout: float = 3.0,
    bucket: Optional[str] = None,
    name: str = "bucket",
    hint: str = HINT_OFFLINE,
) -> Check:
    """Whether a bucket (default ``dm_graphcast``) answers within ``timeout`` seconds (proxies
    come from the environment)."""
    from graphcast_zero import remotes

    bucket = bucket or remotes.BUCKET
    url = remotes.bucket_probe_url(endpoint, bucket)
    start = time.monotonic()
    answer = remotes.probe_bucket(
        endpoint, bucket=bucket, timeout=(timeout, timeout), deadline=timeout
    )
    elapsed_ms = (time.monotonic() - start) * 1000
    if answer.status is None:
        return Check(name, WARN, f"unreachable: {answer.reason} ({url})", hint)
    if 200 <= answer.status < 300:
        return Check(name, OK, f"gs://{bucket} reachable in {elapsed_ms:.0f} ms ({url})")
    return Check(name, WARN, f"HTTP {answer.status} from {url}", hint)


def check_era5_store(endpoint: Optional[str] = None, timeout: float = 3.0) -> Check:
    """Whether the ARCO-ERA5 store's bucket (``fetch-data --source era5``) answers."""
    from graphcast_zero.sources.layouts import ARCO

    bucket = ARCO.url.removeprefix("gs://").split("/")[0]
    return check_bucket(endpoint, timeout, bucket=bucket, name="era5 store", hint=HINT_ERA5)


def check_open_data(mirror: str = "ecmwf", timeout: float = 3.0) -> Check:
    """Whether ECMWF's open-data source (``fetch-data --source ecmwf-open-data``) answers."""
    from graphcast_zero.errors import InputError
    from graphcast_zero.sources import open_data

    try:
        start = time.monotonic()
        url, answer = open_data.probe(mirror, timeout)
    except InputError as error:
        return Check("open data", WARN, str(error))  # the message names the fix
    elapsed_ms = (time.monotonic() - start) * 1000
    if answer.status is None:
        return Check("open data", WARN, f"unreachable: {answer.reason} ({url})", HINT_OPEN_DATA)
    if answer.status < 500:
        detail = f"{url} answers in {elapsed_ms:.0f} ms (HTTP {answer.status})"
        return Check("open data", OK, detail)
    return Check("open data", WARN, f"HTTP {answer.status} from {url}", HINT_OPEN_DATA)


def run_doctor(
    paths: DataPaths,
    endpoint: Optional[str] = None,
    bucket_timeout: float = 3.0,
    mirror: str = "ecmwf",
) -> list[Check]:
    """Runs every check, in table order."""
    gpus = detect_gpus()
    return [
        check_python(),
        *check_packages(),
        check_jax(gpu_present=bool(gpus)),
        check_cuda(gpus),
        check_data_folder(paths),
        check_disk(paths),
        *check_data_files(paths),
        check_kernel(),
        check_bucket(endpoint, bucket_timeout),
        check_era5_store(endpoint, bucket_timeout),
        check_open_data(mirror, bucket_timeout),
    ]


def essential_failures(checks: list[Check]) -> list[Check]:
    """The rows that make ``invoke doctor`` exit non-zero."""
    return [check for check in checks if check.status == FAIL]


def format_table(checks: list[Check]) -> str:
    """The checks as an aligned text table, each problem followed by its hint."""
    width = max(len("check"), *(len(check.name) for check in checks))
    lines = [f"{'check':<{width}}  status  detail"]
    for check in checks:
        lines.append(f"{check.name:<{width}}  {check.status:<6}  {check.detail}")
        if check.hint and check.status != OK:
            lines.append(f"{'':<{width}}  {'':<6}  hint: {check.hint}")
    counts = {status: sum(c.status == status for c in checks) for status in (OK, WARN, FAIL)}
    lines.append(", ".join(f"{n} {status}" for status, n in counts.items()))
    return "\n".join(lines)
