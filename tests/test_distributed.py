"""Multi-process training run for real: two processes on this machine joined by
``jax.distributed`` (a coordinator on 127.0.0.1, gloo collectives on the CPU), driven through
``invoke run-training`` as a user would, against one process training the same windows."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from graphcast_zero import distributed
from graphcast_zero.errors import InputError

from .conftest import OFFICIAL, REPO_ROOT

# A tiny random model on the fixture's 4° grid, float32, one window per process.
TINY = ["--random", "--mesh-size", "1", "--latent-size", "8", "--gnn-msg-steps", "1",
        "--precision", "float32", "--batch-size", "2"]  # fmt: skip
HEARTBEAT_S = 5
# How long a survivor may take to stop once its peer is killed: the failed collective ends it at
# once; the heartbeat (5 s) bounds a runtime that learns it first; the rest is slack for a busy CI.
STOP_BOUND_S = 60


def test_options_are_checked_before_joining():
    for options, match in [
        (distributed.DistributedOptions("host-without-port", 2, 0), "HOST:PORT"),
        (distributed.DistributedOptions("127.0.0.1:1234", None, 0), "--num-processes"),
        (distributed.DistributedOptions("127.0.0.1:1234", 2, 2), "--process-id must be 0 … 1"),
    ]:
        with pytest.raises(InputError, match=match):
            options.check()
    distributed.DistributedOptions("auto").check()  # detected by JAX on a cluster


def test_a_fatal_runtime_line_reaches_the_terminal_once(tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "REPORT_GRACE_S", 0.0)
    monkeypatch.setattr(distributed._job, "reported", threading.Event())
    monkeypatch.setattr(distributed._job, "exit_status", None)
    read_end, write_end = os.pipe()
    terminal, log = io.StringIO(), tmp_path / "runtime.log"
    copier = threading.Thread(target=distributed.copy_native_log, args=(read_end, log, terminal))
    copier.start()
    lines = [
        b"W1201 18:51:55.812125 15970 preemption_sync_manager.cc:147] a warning\n",
        b"F1201 18:51:55.920930 15970 client.h:80] Terminating process because X died\n",
        b"*** Check failure stack trace: ***\n",
        b"F1201 18:51:56.000000 15970 client.h:80] a second fatal line\n",
    ]
    os.write(write_end, b"".join(lines))
    os.close(write_end)
    copier.join(10)
    assert log.read_bytes() == b"".join(lines)  # everything in the log file
    shown = terminal.getvalue().splitlines()
    assert len(shown) == 1 and "Terminating process because X died" in shown[0]
    assert "--resume" in shown[0] and str(log) in shown[0]


# ------------------------------------------------------------------------------- two processes


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One compilation and graph cache for every process of this module."""
    return tmp_path_factory.mktemp("cache")


def data_folder(root: Path, cache: Path) -> Path:
    """A data folder of its own (so what each process writes is visible) sharing the cache."""
    for part in ("params", "stats", "dataset"):
        shutil.copytree(OFFICIAL / part, root / part)
    (root / "cache").symlink_to(cache)
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train(folder: Path, *options: str, process: int | None = None, port: int = 0):
    """Starts `invoke run-training` on ``folder`` (as ``process`` of two when given)."""
    command = [sys.executable, "-m", "invoke", "run-training", *TINY, *options,
               "--data-dir", str(folder), "--output", str(folder / "outputs" / "run" / "params.npz")]  # fmt: skip
    if process is not None:
        command += ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                    "--process-id", str(process), "--heartbeat-timeout", str(HEARTBEAT_S)]  # fmt: skip
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


def messages(stderr: str) -> list[str]:
    """Non-empty stderr lines that are not the progress bar's redraws."""
    lines = (line.split("\r")[-1].strip() for line in stderr.split("\n"))
    return [line for line in lines if line and not line.startswith("training:")]


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path, shared_cache):
    single = data_folder(tmp_path / "single", shared_cache)
    code, err = finish(train(single, "--iterations", "3"))
    assert code == 0, err[-3000:]
    folders = [data_folder(tmp_path / f"process-{i}", shared_cache) for i in (0, 1)]
    port = free_port()
    jobs = [train(folder, "--iterations", "3", process=i, port=port)
            for i, folder in enumerate(folders)]  # fmt: skip
    for job in jobs:
        code, err = finish(job)
        assert code == 0, err[-3000:]
    ours = json.loads((folders[0] / "outputs" / "run" / "training.json").read_text())
    theirs = json.loads((single / "outputs" / "run" / "training.json").read_text())
    assert ours["processes"] == 2 and ours["devices"] == 2 and theirs["devices"] == 1
    # The two-process step averages the batch over processes in another order than one device:
    # float32 rounding (~1e-7 of each value) that three AdamW steps at rate 1e-3 carry into the
    # weights far below 1e-3 of a step, so 1e-6 in the weights and 1e-6 relative in the loss.
    np.testing.assert_allclose(ours["losses"], theirs["losses"], rtol=1e-6)
    with np.load(folders[0] / "outputs" / "run" / "params.npz") as a, \
            np.load(single / "outputs" / "run" / "params.npz") as b:  # fmt: skip
        keys = [k for k in a.files if k.startswith("params:")]
        assert keys and set(keys) == {k for k in b.files if k.startswith("params:")}
        for key in keys:
            np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-6, err_msg=key)
    # Only process 0 writes: process 1's data folder has no outputs at all.
    assert not (folders[1] / "outputs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0], ids=["worker-killed", "coordinator-killed"])
def test_a_killed_peer_ends_the_other_with_one_line(tmp_path, shared_cache, victim):
    folders = [data_folder(tmp_path / f"process-{i}", shared_cache) for i in (0, 1)]
    port = free_port()
    jobs = [train(folder, "--iterations", "1000", "--checkpoint-every", "1", process=i, port=port)
            for i, folder in enumerate(folders)]  # fmt: skip
    record = folders[0] / "outputs" / "run" / "training.json"
    deadline = time.monotonic() + 600
    while not record.exists():  # training runs: process 0 saved its first iteration
        assert all(job.poll() is None for job in jobs), finish(jobs[0], 30)[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    jobs[victim].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    survivor = jobs[1 - victim]
    code, err = finish(survivor, timeout=STOP_BOUND_S)
    stopped_after = time.monotonic() - killed_at
    finish(jobs[victim], 30)
    assert stopped_after < STOP_BOUND_S
    assert code != 0 and (victim == 0 or code == 1), (code, err[-3000:])
    shown = messages(err)
    assert len(shown) == 1, err[-3000:]
    assert shown[0].startswith("training stopped") and "--resume" in shown[0]
    assert "Traceback" not in err and "Check failure" not in err
