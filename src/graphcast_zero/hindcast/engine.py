"""The Dask side of a hindcast: a cluster to run on, and the tasks sent to it.

:func:`dask_client` connects to an existing scheduler (``--scheduler tcp://host:8786``: a
``dask scheduler``/``dask worker`` pair, SLURM through dask-jobqueue, Kubernetes) or starts a
``LocalCluster``: one worker process per visible GPU (each pinned to its own), else two on a CPU
with two cores or more (``--workers N`` to choose), each with two threads (one forecasting, one
reading ahead).
:func:`forecast_all` sends two tasks per initialisation (read the window, then forecast it) and
yields the results as they finish. Dask re-runs a task that raised (``RETRIES``) and moves the
tasks of a worker that died to another one; the scheduler gives up on a task after
``distributed.scheduler.allowed-failures`` worker deaths (3 by default).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from typing import Optional

import numpy as np
import xarray as xr
from distributed import WorkerPlugin

from graphcast_zero.environment import detect_gpus
from graphcast_zero.errors import FetchError
from graphcast_zero.hindcast import climatology, worker
from graphcast_zero.hindcast.campaign import Campaign

THREADS_PER_WORKER = 2  # one forecasting, one reading the next window
# On a CPU, XLA already spreads one forecast over every core; a second worker fills the gaps
# while the first reads, scores and writes (1.5x the throughput of one on 2 cores, in
# benchmarks/README.md); more would add memory, not speed.
CPU_WORKERS = 2
RETRIES = 2  # re-runs of a task that raised (a network error reading the source, say)
CONNECT_TIMEOUT_S = 30
WORKER_WAIT_S = 120


def visible_gpus() -> list[str]:
    """The GPUs this machine shows (``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi -L``), without
    starting JAX here: the client must not take a GPU's memory from the workers."""
    chosen = os.environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is not None:
        return [d.strip() for d in chosen.split(",") if d.strip() and d.strip() != "-1"]
    return [str(i) for i in range(len(detect_gpus() or []))]


class PinDevice(WorkerPlugin):
    """A worker plugin giving each local worker its own GPU before JAX starts in it."""

    name = "graphcast-zero-pin-device"

    def __init__(self, devices: Sequence[str]):
        self.devices = list(devices)

    def setup(self, worker) -> None:
        index = int(worker.name) if str(worker.name).isdigit() else 0
        os.environ["CUDA_VISIBLE_DEVICES"] = self.devices[index % len(self.devices)]


@contextlib.contextmanager
def dask_client(scheduler: Optional[str], workers: Optional[int], log=print) -> Iterator[object]:
    """A Dask client: on ``scheduler``'s cluster, or on a local cluster started here.

    Raises:
      FetchError: the scheduler cannot be reached, or no worker joins it.
    """
    from distributed import Client

    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as error:
            raise FetchError(
                f"cannot reach the Dask scheduler at {scheduler} ({type(error).__name__}): start "
                "one (`dask scheduler`) or check --scheduler"
            ) from None
        with contextlib.closing(client):
            _wait_for_workers(client, scheduler)
            count = len(client.scheduler_info()["workers"])
            log(f"Dask: the cluster at {scheduler} ({count} workers)")
            yield client
        return
    with _local_cluster(workers, log) as client:
        yield client


def _wait_for_workers(client, scheduler: str) -> None:
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError:
        raise FetchError(
            f"no worker joined the Dask scheduler at {scheduler} in {WORKER_WAIT_S} s: start "
            f"workers (`dask worker {scheduler} --nthreads {THREADS_PER_WORKER}`)"
        ) from None


@contextlib.contextmanager
def _local_cluster(workers: Optional[int], log) -> Iterator[object]:
    from distributed import Client, LocalCluster

    gpus = visible_gpus()
    count = int(workers) if workers else len(gpus) or min(CPU_WORKERS, os.cpu_count() or 1)
    # The scheduler serves HTTP in any case: on a free port, not on 8787 (another cluster's, say).
    # Its dashboard pages need bokeh.
    dashboard = importlib.util.find_spec("bokeh") is not None
    cluster = LocalCluster(
        n_workers=count, threads_per_worker=THREADS_PER_WORKER, processes=True,
        dashboard_address=":0", silence_logs=logging.ERROR,
    )  # fmt: skip
    with contextlib.closing(cluster), Client(cluster) as client:
        if gpus:
            client.register_plugin(PinDevice(gpus))
        where = f", dashboard {client.dashboard_link}" if dashboard else ""
        device = f"one per GPU of {len(gpus)}" if gpus and not workers else "on the CPU"
        if gpus and workers:
            device = f"over {len(gpus)} GPUs"
        log(f"Dask: a local cluster of {count} workers ({device}), {THREADS_PER_WORKER} "
            f"threads each{where}")  # fmt: skip
        yield client


def forecast_all(
    client,
    campaign: Campaign,
    model: ModelFiles,
    climatology_spec: Optional[climatology.ClimatologySpec],
    todo: Sequence[int],
) -> Iterator[worker.InitResult]:
    """Forecasts the initialisations at ``todo`` (store indices); yields each result as it
    finishes. On an error the remaining tasks are cancelled.

    Raises:
      GraphCastZeroError: a forecast's own error (for example a window with NaN inputs).
      FetchError: workers kept dying on one initialisation, or the cluster went away.
    """
    from distributed import KilledWorker, as_completed
    from distributed.client import FutureCancelledError

    token = uuid.uuid4().hex[:8]
    bundle = client.submit(
        worker.load_bundle, model.params, model.stats_dir, model.key,
        key=f"hindcast-model-{model.key[:12]}-{token}", retries=RETRIES,
    )  # fmt: skip
    futures = []
    for index in todo:
        stamp = f"{campaign.inits[index]:%Y%m%dT%H%M}"
        window = client.submit(
            worker.load_window, campaign, index, key=f"hindcast-window-{stamp}-{token}",
            retries=RETRIES,
        )  # fmt: skip
        # Forecasts first: a worker with a window in hand forecasts before it reads another.
        futures.append(
            client.submit(
                worker.forecast_window,
                campaign,
                bundle,
                climatology_spec,
                index,
                window,
                key=f"hindcast-forecast-{stamp}-{token}",
                retries=RETRIES,
                priority=1,
            )  # fmt: skip
        )
        del window  # the client keeps only the forecasts: a window is freed once forecast
    try:
        for future in as_completed(futures):
            try:
                result = future.result()
            except KilledWorker:
                raise FetchError(
                    "Dask workers died repeatedly while forecasting one initialisation (out of "
                    "memory? see the worker logs): use fewer --workers, or bigger ones"
                ) from None
            except FutureCancelledError as error:
                raise FetchError(
                    f"the Dask cluster dropped the campaign's tasks ({str(error)[:120]}): "
                    "check the scheduler and workers, then run again to resume"
                ) from None
            if result.error is not None:
                raise result.error
            yield result
    finally:
        client.cancel([*futures, bundle])


@dataclasses.dataclass(frozen=True)
class ModelFiles:
    """The checkpoint and statistics, as paths every worker can read, and the checkpoint's digest."""

    params: str
    stats_dir: str
    key: str


def compute_climatology(client, campaign: Campaign, frames, on_block=None) -> xr.Dataset:
    """The hour-of-day means of the campaign's variables over ``frames``, block by block on the
    cluster."""
    from distributed import as_completed

    futures = [
        client.submit(climatology.block_sums, campaign, first, count, retries=RETRIES, pure=False)
        for first, count in climatology.blocks(frames)
    ]
    partials = []
    try:
        for future in as_completed(futures):
            partials.append(future.result())
            if on_block is not None:
                on_block(int(np.asarray(partials[-1]["count"]).sum()))
    finally:
        client.cancel(futures)
    return climatology.combine(partials)
