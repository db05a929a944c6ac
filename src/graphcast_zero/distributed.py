"""Several processes training one model: joining the job, and ending cleanly when a peer dies.

:func:`initialize` joins a multi-process JAX job (``jax.distributed``): a coordinator address
that every process names, the number of processes and this one's index, or ``auto`` for the
clusters JAX detects by itself (SLURM, Open MPI, Cloud TPU). On CPUs the processes exchange
gradients over gloo (TCP); on GPUs JAX uses NCCL.

JAX's own reaction to a dead peer is to abort the survivors from its C++ runtime, with a stack
trace: at exit, when the shutdown barrier cannot be reached, or as soon as its coordination
service notices (the coordinator's socket closing, or a process silent for ``heartbeat_timeout``
seconds). Here instead:

- the training workflow turns the failed collective (:func:`peer_failure` recognises it) into a
  one-line :class:`~graphcast_zero.errors.DistributedError` and calls :func:`abandon_job`, so
  the process exits with that line and status 1 without the shutdown barrier that a dead peer
  can never join;
- the runtime's own messages (its logs, and the stack trace of an abort that still comes first)
  go to a log file (:func:`send_native_logs_to`), not the terminal, which keeps Python's lines.

A process that hangs without dying is ended by JAX's heartbeat after ``heartbeat_timeout``
seconds; the others then stop with the runtime's message in their log files.
"""

from __future__ import annotations

import atexit
import dataclasses
import inspect
import os
import re
import sys
import threading
from pathlib import Path
from typing import Optional

from graphcast_zero.errors import InputError

AUTO = "auto"
EXIT_STATUS = 1
REPORT_GRACE_S = 0.05  # the workflow's own report is better: give it this long to come first
FATAL_LINE = re.compile(rb"^F\d{4} ")  # glog: severity F, then the month and day
RUNTIME_MARKERS = ("gloo", "coordination", "heartbeat", "connection", "socket", "peer", "nccl")


@dataclasses.dataclass(frozen=True)
class DistributedOptions:
    """How this process joins a multi-process training job.

    Attributes:
      coordinator: ``HOST:PORT`` of process 0's coordination service (the same on every
        process), or ``auto`` for SLURM, Open MPI and Cloud TPU.
      num_processes: how many processes train together (with ``auto``: detected).
      process_id: this process's index, 0 … ``num_processes - 1`` (with ``auto``: detected).
      heartbeat_timeout_s: a process silent this long counts as dead, and the job ends.
      init_timeout_s: how long to wait for every process to join.
    """

    coordinator: str
    num_processes: Optional[int] = None
    process_id: Optional[int] = None
    heartbeat_timeout_s: int = 60
    init_timeout_s: int = 300

    def check(self) -> None:
        """Raises InputError for options that cannot describe a job."""
        if self.coordinator == AUTO:
            return
        host, _, port = self.coordinator.rpartition(":")
        if not host or not port.isdigit():
            raise InputError(
                f"--coordinator {self.coordinator!r} must be HOST:PORT (process 0's address and "
                "a free port, the same on every process) or auto"
            )
        if not self.num_processes or self.num_processes < 1:
            raise InputError("--coordinator needs --num-processes (how many processes train)")
        if self.process_id is None or not 0 <= self.process_id < self.num_processes:
            raise InputError(
                f"--process-id must be 0 … {self.num_processes - 1} (this process's index), "
                f"not {self.process_id}"
            )
        if self.heartbeat_timeout_s < 1 or self.init_timeout_s < 1:
            raise InputError("--heartbeat-timeout must be at least 1 second")


class _Job:
    """What this process knows about the job's failure (one per process)."""

    exit_status: Optional[int] = None
    native_log: Optional[Path] = None
    reported = threading.Event()  # the failure has been shown on the terminal


_job = _Job()


def initialize(options: DistributedOptions) -> None:
    """Joins the job (once per process, before any JAX computation).

    Raises:
      InputError: bad options, or the job could not be joined (the message names the
        coordinator and the timeout).
    """
    import jax

    options.check()
    if jax.distributed.is_initialized():
        return
    # CPU processes exchange arrays over TCP with gloo; GPU collectives are unaffected.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    arguments = {
        "initialization_timeout": options.init_timeout_s,
        "heartbeat_timeout_seconds": options.heartbeat_timeout_s,
        "shutdown_timeout_seconds": options.heartbeat_timeout_s,
    }
    if options.coordinator != AUTO:
        arguments.update(
            coordinator_address=options.coordinator,
            num_processes=options.num_processes,
            process_id=options.process_id,
        )
    accepted = inspect.signature(jax.distributed.initialize).parameters
    arguments = {name: value for name, value in arguments.items() if name in accepted}
    try:
        jax.distributed.initialize(**arguments)
    except (RuntimeError, ValueError) as error:
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        raise InputError(
            f"could not join the training job at --coordinator {options.coordinator} within "
            f"{options.init_timeout_s} s ({type(error).__name__}: {reason}): start every process "
            "with the same --coordinator and --num-processes, and process 0 first"
        ) from None
    atexit.register(_exit_without_shutdown)


def process_index() -> int:
    import jax

    return jax.process_index()


def process_count() -> int:
    import jax

    return jax.process_count()


def peer_failure(error: BaseException) -> bool:
    """Whether ``error`` is a multi-process runtime failing because a peer died or hung (a
    collective or the coordination service lost its connection), not this process's own
    problem such as running out of memory."""
    if process_count() < 2 or not isinstance(error, (RuntimeError, ValueError)):
        return False
    text = str(error).lower()
    return any(marker in text for marker in RUNTIME_MARKERS)


def abandon_job(exit_status: int = EXIT_STATUS) -> None:
    """Marks the job as failed and reported: this process will exit with ``exit_status``
    without JAX's shutdown barrier, which a dead peer can never reach."""
    _job.exit_status = exit_status
    _job.reported.set()


def send_native_logs_to(path: Path) -> threading.Thread:
    """Sends what C and C++ libraries write to standard error (file descriptor 2) into ``path``;
    Python's ``sys.stderr`` goes on writing to the terminal.

    A fatal runtime message (glog's ``F…`` line, written just before the runtime aborts the
    process) is also shown on the terminal as one line, unless the workflow has already said why
    the job stopped: a process never dies without a word.

    Returns:
      The thread that copies the runtime's output (a daemon: it ends with the process).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding=sys.stderr.encoding)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = terminal
    _job.native_log = path
    copier = threading.Thread(
        target=copy_native_log, args=(read_end, path, terminal), daemon=True,
        name="native-stderr",
    )  # fmt: skip
    copier.start()
    return copier


def copy_native_log(read_end: int, path: Path, terminal) -> None:
    """Copies lines from ``read_end`` into ``path``, showing a fatal one on ``terminal`` unless
    the workflow reports the failure within :data:`REPORT_GRACE_S` (it names the iteration and
    the checkpoint; the runtime's abort comes later, after its stack trace)."""
    with open(path, "ab") as log, os.fdopen(read_end, "rb") as pipe:
        for line in pipe:
            log.write(line)
            log.flush()
            if FATAL_LINE.match(line) and not _job.reported.wait(REPORT_GRACE_S):
                _job.exit_status = EXIT_STATUS
                _job.reported.set()  # said once
                reason = line.decode(errors="replace").split("] ", 1)[-1].strip()[:200]
                terminal.write(
                    f"training stopped: JAX's runtime ended this process ({reason}); restart "
                    f"every process with --resume; JAX's log: {path}\n"
                )
                terminal.flush()


def native_log() -> Optional[Path]:
    """Where :func:`send_native_logs_to` sends the runtime's messages (None: the terminal)."""
    return _job.native_log


def _exit_without_shutdown() -> None:
    # Registered after JAX's own exit handler, so it runs first: a failed job ends here, before
    # JAX's shutdown would abort the process.
    if _job.exit_status is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_job.exit_status)
