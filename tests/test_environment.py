"""Setup (folders, Jupyter kernel) and the doctor's checks, on temporary folders and local servers."""

from __future__ import annotations

import http.server
import importlib.metadata
import json
import platform
import socket
import sys
import threading
import time

import pytest

from graphcast_zero import environment, remotes
from graphcast_zero.environment import FAIL, OK, WARN, Check
from graphcast_zero.errors import InputError
from graphcast_zero.paths import DATA_DIR_ENV, DataPaths


@pytest.fixture
def jupyter_dir(tmp_path, monkeypatch):
    """A private JUPYTER_DATA_DIR, so no test touches the user's kernels."""
    folder = tmp_path / "jupyter"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def paths(tmp_path):
    return DataPaths(tmp_path / "data")


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        body = json.dumps({"kind": "storage#objects", "path": self.path}).encode()
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """Starts a local HTTP server answering every GET with the given status; yields its URL."""
    servers = []

    def start(status: int) -> str:
        handler = type("Handler", (_Handler,), {"status": status})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        serve = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        serve.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------------- setup


def test_setup_writes_folders_and_kernel_for_this_python(paths, jupyter_dir):
    report = environment.run_setup(paths)
    assert all(folder.is_dir() for folder in paths.folders())
    spec = json.loads((jupyter_dir / "kernels" / "graphcast" / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    assert "ipykernel_launcher" in spec["argv"]
    assert spec["display_name"] == f"Python {platform.python_version()} (graphcast)"
    assert spec["env"] == {DATA_DIR_ENV: str(paths.root)}
    assert report.count("created") == 4 and "installed" in report


def test_setup_is_idempotent(paths, jupyter_dir):
    environment.run_setup(paths)
    spec_file = jupyter_dir / "kernels" / "graphcast" / "kernel.json"
    before = spec_file.stat().st_mtime_ns
    report = environment.run_setup(paths)
    assert spec_file.stat().st_mtime_ns == before
    assert all(step.needed is False for step in environment.plan_setup(paths))
    assert "created" not in report and "installed" not in report
    assert report.count("  ok ") == 5


def test_setup_reinstalls_a_kernel_for_another_data_folder(paths, jupyter_dir, tmp_path):
    environment.run_setup(paths)
    other = DataPaths(tmp_path / "other")
    report = environment.run_setup(other)
    spec = json.loads((jupyter_dir / "kernels" / "graphcast" / "kernel.json").read_text())
    assert spec["env"][DATA_DIR_ENV] == str(other.root)
    assert "installed" in report


def test_setup_dry_run_changes_nothing(paths, jupyter_dir):
    report = environment.run_setup(paths, dry_run=True)
    assert not paths.root.exists() and not jupyter_dir.exists()
    assert report.count("would create") == 4 and "would install" in report
    assert "dry run" in report.splitlines()[0]


def test_setup_custom_kernel_name(paths, jupyter_dir):
    environment.run_setup(paths, kernel_name="gc-test")
    spec = json.loads((jupyter_dir / "kernels" / "gc-test" / "kernel.json").read_text())
    assert spec["display_name"].endswith("(gc-test)")


def test_setup_rejects_a_bad_kernel_name(paths, jupyter_dir):
    with pytest.raises(InputError, match="kernel name 'my kernel!'"):
        environment.run_setup(paths, kernel_name="my kernel!")
    assert not paths.root.exists()


def test_setup_under_a_file_names_the_fix(tmp_path, jupyter_dir):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match="--data-dir"):
        environment.run_setup(DataPaths(blocker / "data"))


def test_setup_with_an_unwritable_kernel_folder_names_the_fix(paths, tmp_path, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(blocker))
    with pytest.raises(InputError, match="JUPYTER_DATA_DIR"):
        environment.run_setup(paths)


# --------------------------------------------------------------------------------------- doctor


@pytest.mark.parametrize(
    "version, status", [((3, 9, 18), WARN), ((3, 10, 0), OK), ((3, 12, 4), OK), ((3, 13, 0), WARN)]
)
def test_check_python(version, status):
    check = environment.check_python(version)
    assert check.status == status
    assert check.detail.startswith(".".join(map(str, version)))


def test_check_packages_marks_a_missing_one_essential():
    def version_of(name):
        if name == "dm-haiku":
            raise importlib.metadata.PackageNotFoundError(name)
        return "1.2.3"

    checks = {check.name: check for check in environment.check_packages(version_of)}
    assert checks["jax"] == Check("jax", OK, "1.2.3")
    assert checks["haiku"].status == FAIL and "pip install" in checks["haiku"].hint


def test_check_jax_on_cpu():
    jax = pytest.importorskip("jax")
    if jax.default_backend() != "cpu":
        pytest.skip("JAX runs on an accelerator here")
    assert environment.check_jax(gpu_present=False).status == OK
    check = environment.check_jax(gpu_present=True)
    assert check.status == WARN and check.detail.startswith("cpu")
    assert "GPU" in check.hint


def test_detect_gpus_reads_nvidia_smi(tmp_path):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 81559 MiB'\n")
    fake.chmod(0o755)
    gpus = environment.detect_gpus(which=lambda _: str(fake))
    assert gpus == ["NVIDIA H100 80GB HBM3, 81559 MiB"]
    assert environment.detect_gpus(which=lambda _: None) is None


@pytest.mark.parametrize(
    "gpus, environ, status, text",
    [
        (None, {}, WARN, "nvidia-smi not found"),
        ([], {}, WARN, "lists no GPU"),
        (["NVIDIA H100, 81559 MiB"], {}, OK, "1 GPU(s): NVIDIA H100"),
        (["NVIDIA H100, 81559 MiB"], {"CUDA_VISIBLE_DEVICES": "0"}, OK, "CUDA_VISIBLE_DEVICES='0'"),
        (["NVIDIA H100, 81559 MiB"], {"CUDA_VISIBLE_DEVICES": ""}, WARN, "1 GPU(s)"),
        (["NVIDIA H100, 81559 MiB"], {"CUDA_VISIBLE_DEVICES": "-1"}, WARN, "1 GPU(s)"),
    ],
)
def test_check_cuda(gpus, environ, status, text):
    check = environment.check_cuda(gpus, environ)
    assert check.status == status and text in check.detail
    assert bool(check.hint) == (status != OK)


def test_check_data_folder(paths, tmp_path):
    assert environment.check_data_folder(paths).status == WARN
    paths.root.mkdir()
    assert environment.check_data_folder(paths) == Check("data folder", OK, str(paths.root))
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    assert environment.check_data_folder(DataPaths(not_a_folder)).status == FAIL


def test_check_disk_threshold(paths):
    assert environment.check_disk(paths, min_free=0).status == OK
    check = environment.check_disk(paths, min_free=2**70)
    assert check.status == WARN and "GRAPHCAST_DATA_DIR" in check.hint
    assert "GiB free at" in check.detail


def test_check_data_files(paths):
    assert [c.status for c in environment.check_data_files(paths)] == [WARN, WARN, WARN]
    for folder in paths.folders():
        folder.mkdir(parents=True)
    (paths.params / "GraphCast_small.npz").write_bytes(b"")
    (paths.params / "GraphCast_small.npz.part").write_bytes(b"")  # partial downloads don't count
    (paths.dataset / "source-era5_date-2022-01-01_res-1.0_levels-13_steps-01.nc").write_bytes(b"")
    stats_files = paths.stats_files()
    for file in stats_files[:2]:
        file.write_bytes(b"")
    params, stats, dataset = environment.check_data_files(paths)
    assert params == Check("params", OK, "1 checkpoint(s): GraphCast_small.npz")
    assert stats.status == WARN and stats.detail.endswith(stats_files[2].name)
    assert "fetch-data --source demo" in stats.hint
    assert dataset.status == OK and "res-1.0" in dataset.detail
    stats_files[2].write_bytes(b"")
    assert environment.check_data_files(paths)[1] == Check("stats", OK, "all 3 files")


def test_check_kernel(paths, jupyter_dir):
    assert environment.check_kernel().status == WARN
    environment.run_setup(paths)
    assert environment.check_kernel().status == OK
    spec_file = jupyter_dir / "kernels" / "graphcast" / "kernel.json"
    spec = json.loads(spec_file.read_text())
    spec["argv"][0] = "/elsewhere/bin/python"
    spec_file.write_text(json.dumps(spec))
    check = environment.check_kernel()
    assert check.status == WARN and "/elsewhere/bin/python" in check.detail


def test_bucket_probe_url(monkeypatch):
    monkeypatch.delenv(remotes.EMULATOR_ENV, raising=False)
    listing = "/storage/v1/b/dm_graphcast/o?maxResults=1"
    assert remotes.bucket_probe_url() == "https://storage.googleapis.com" + listing
    assert remotes.bucket_probe_url("http://mirror:8/") == "http://mirror:8" + listing
    monkeypatch.setenv(remotes.EMULATOR_ENV, "localhost:9023")
    assert remotes.bucket_probe_url() == "http://localhost:9023" + listing


def test_bucket_reachable(http_server):
    check = environment.check_bucket(http_server(200), timeout=5)
    assert check.status == OK and "reachable" in check.detail


def test_bucket_error_status(http_server):
    check = environment.check_bucket(http_server(403), timeout=5)
    assert check.status == WARN and check.detail.startswith("HTTP 403")


def test_bucket_refused_is_quick():
    start = time.monotonic()
    check = environment.check_bucket(f"http://127.0.0.1:{_unused_port()}", timeout=3)
    assert time.monotonic() - start < 2
    assert check.status == WARN and "unreachable" in check.detail
    assert "--source demo" in check.hint and "--endpoint" in check.hint


def test_era5_store_row_names_the_store_and_the_mirror_options(http_server):
    check = environment.check_era5_store(http_server(200), timeout=5)
    assert check.status == OK and "gs://gcp-public-data-arco-era5 reachable" in check.detail
    check = environment.check_era5_store(f"http://127.0.0.1:{_unused_port()}", timeout=3)
    assert check.status == WARN and "--endpoint" in check.hint and "--store" in check.hint


def test_bucket_silent_server_times_out():
    # A listening socket that never answers: the connection opens, the reply never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        start = time.monotonic()
        check = environment.check_bucket(f"http://127.0.0.1:{silent.getsockname()[1]}", 0.5)
        elapsed = time.monotonic() - start
    assert 0.4 < elapsed < 2
    assert check.status == WARN and "unreachable" in check.detail


def test_format_table_and_failures():
    checks = [
        Check("python", OK, "3.11.7", "never shown"),
        Check("stats", WARN, "missing", "fetch them"),
        Check("jax", FAIL, "not installed", "install it"),
    ]
    lines = environment.format_table(checks).splitlines()
    assert lines[0].split() == ["check", "status", "detail"]
    assert lines[1].split() == ["python", "OK", "3.11.7"]
    assert lines[3].split() == ["hint:", "fetch", "them"]
    assert lines[3].index("hint:") == lines[0].index("detail")
    assert "never shown" not in "\n".join(lines)
    assert lines[-1] == "1 OK, 1 WARN, 1 FAIL"
    assert environment.essential_failures(checks) == [checks[2]]


def test_open_data_row_says_whether_the_source_answers(http_server):
    check = environment.check_open_data(http_server(200), timeout=5)
    assert check.status == OK and "answers in" in check.detail and "(HTTP 200)" in check.detail
    start = time.monotonic()
    check = environment.check_open_data(f"http://127.0.0.1:{_unused_port()}", timeout=3)
    assert time.monotonic() - start < 2
    assert check.status == WARN and "unreachable" in check.detail
    assert "--mirror aws, azure or google" in check.hint
    check = environment.check_open_data("ftp://example", timeout=1)
    assert check.status == WARN and "--mirror 'ftp://example'" in check.detail


def test_run_doctor_rows(paths, jupyter_dir):
    refused = f"http://127.0.0.1:{_unused_port()}"
    checks = environment.run_doctor(paths, refused, 1.0, mirror=refused)
    names = [check.name for check in checks]
    assert names == [
        "python", "jax", "jaxlib", "haiku", "xarray", "jax devices", "cuda", "data folder",
        "free disk", "params", "stats", "dataset", "jupyter kernel", "bucket", "era5 store",
        "open data",
    ]  # fmt: skip
    assert all(check.status in (OK, WARN, FAIL) for check in checks)
    assert environment.essential_failures(checks) == []
