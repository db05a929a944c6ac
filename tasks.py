"""GraphCast from Zero tasks: `invoke --list` shows them, `invoke --help TASK` explains one.

Each task is a thin wrapper: it resolves the data folder, calls one function of the
`graphcast_zero` package, and turns a library error into a one-line message and a non-zero exit.
"""

from __future__ import annotations

import functools
import shlex
import sys
from pathlib import Path
from typing import Optional

from invoke import Exit, Task, task

try:
    from graphcast_zero import environment
    from graphcast_zero.errors import GraphCastZeroError
    from graphcast_zero.paths import DataPaths, resolve_data_dir
except ImportError as err:  # e.g. a system-wide invoke outside the project's venv
    raise SystemExit(
        f"tasks.py: cannot import graphcast_zero ({err}). Install the project with "
        '`.venv/bin/pip install -e ".[dev]"` and run `.venv/bin/invoke`.'
    ) from err

ROOT = Path(__file__).resolve().parent
LINT_PATHS = ("src", "tests", "tasks.py", "benchmarks", "scripts")
DATA_DIR_HELP = (
    "data folder (default: $GRAPHCAST_DATA_DIR, else invoke.yaml's data_dir, else ./data)"
)
CHUNKS_HELP = (
    "run the encoder and decoder over this many chunks of grid nodes (0: the fewest that fit "
    "the device's memory; see docs/memory.md)"
)
PRECISION_HELP = (
    "auto (bfloat16 on a GPU, as published; float32 on a CPU, where it is faster), bfloat16 "
    "or float32"
)


class LetterShortFlagTask(Task):
    """invoke's Task whose automatic short flags are letters: invoke would give an option whose
    name's letters are all taken the dash of its name (`--, --reset-optimizer`)."""

    def arg_opts(self, name, default, taken_names):
        return super().arg_opts(name, default, taken_names | {"-"})


def gz_task(**task_options):
    """Like `invoke.task`, but a GraphCastZeroError ends the task with its one-line message."""

    def decorate(body):
        @functools.wraps(body)
        def run_body(c, *args, **kwargs):
            try:
                return body(c, *args, **kwargs)
            except GraphCastZeroError as err:
                raise Exit(str(err), code=1) from None

        return task(klass=LetterShortFlagTask, **task_options)(run_body)

    return decorate


def data_paths(c, data_dir: Optional[str]) -> DataPaths:
    """The data folder: --data-dir, else $GRAPHCAST_DATA_DIR, else invoke config, else ./data."""
    return resolve_data_dir(data_dir, config_value=c.config.get("data_dir"))


@gz_task(
    help={
        "data_dir": DATA_DIR_HELP,
        "dry_run": "show what would be done, change nothing",
        "kernel_name": "name of the Jupyter kernel to install (default: graphcast)",
    }
)
def setup(
    c, data_dir: Optional[str] = None, dry_run: bool = False,
    kernel_name: str = environment.KERNEL_NAME,
):  # fmt: skip
    """Create the data folders and install a Jupyter kernel for this Python."""
    print(environment.run_setup(data_paths(c, data_dir), kernel_name=kernel_name, dry_run=dry_run))


@gz_task(
    help={
        "data_dir": DATA_DIR_HELP,
        "bucket_timeout": "seconds to wait for the bucket before calling it unreachable",
        "endpoint": "probe this GCS-compatible mirror or emulator instead of storage.googleapis.com",
        "mirror": "the ECMWF open-data source to probe: ecmwf, aws, azure, google or a URL",
    }
)
def doctor(
    c, data_dir: Optional[str] = None, bucket_timeout: float = 3.0,
    endpoint: Optional[str] = None, mirror: str = "ecmwf",
):  # fmt: skip
    """Check Python, JAX, GPU, disk, data files, the bucket and open data; print a table."""
    checks = environment.run_doctor(
        data_paths(c, data_dir), endpoint=endpoint, bucket_timeout=bucket_timeout, mirror=mirror
    )
    print(environment.format_table(checks))
    failed = environment.essential_failures(checks)
    if failed:
        names = ", ".join(check.name for check in failed)
        raise Exit(f"doctor: essential checks failed: {names}", code=1)


@gz_task(
    help={
        "model": "published model: small (1.0°, 13 levels; the default), full (0.25°, 37) or "
        "operational (0.25°, 13, HRES; the default with --source ecmwf-open-data)",
        "dataset": "example dataset file name from the bucket, or 'auto' for the best fit to the model",
        "steps": "need at least this many 6-hour target steps in the dataset (0: any); "
        "--source era5 / ecmwf-open-data: the steps after t0 (default 4 / 40)",
        "list": "list what the bucket holds and what is already local, then stop",
        "data_dir": DATA_DIR_HELP,
        "endpoint": "GCS-compatible mirror or emulator URL instead of storage.googleapis.com",
        "source": "gcs (the public bucket), hf (Hugging Face mirror), demo (generated, offline), "
        "era5 (a dataset for any date from an ERA5 Zarr store) or ecmwf-open-data (today's "
        "analyses for a real-time forecast)",
        "hf_repo": "Hugging Face dataset repo mirroring dataset/ and stats/ (with --source hf; "
        "the host comes from $HF_ENDPOINT or --endpoint)",
        "autodl_proxy": "on AutoDL: use the academic proxy from /etc/network_turbo (read, not run)",
        "init": "--source era5 / ecmwf-open-data: initialisation time t0, the last input frame "
        "(2023-06-01T06), or latest",
        "resolution": "--source era5 / ecmwf-open-data: grid spacing in degrees (default: the "
        "model's)",
        "levels": "--source era5: 13 or 37 pressure levels (default: the model's)",
        "store": "--source era5: auto (the cheapest store that covers the request), arco, wb2, "
        "a gs:// Zarr address or a local store",
        "mirror": "--source ecmwf-open-data: ecmwf (ECMWF's server, recent days), aws, azure, "
        "google (cloud mirrors, longer history) or an http(s):// URL of a copy",
    }
)
def fetch_data(
    c, model: str = "", dataset: str = "auto", steps: int = 0, list_: bool = False,
    data_dir: Optional[str] = None, endpoint: Optional[str] = None, source: str = "gcs",
    hf_repo: Optional[str] = None, autodl_proxy: bool = False, init: str = "latest",
    resolution: float = 0.0, levels: int = 0, store: str = "auto", mirror: str = "ecmwf",
):  # fmt: skip
    """Fetch a checkpoint, its statistics and a dataset (an example, any date from ERA5, today)."""
    from graphcast_zero import fetch

    era5 = fetch.Era5Options(
        init=init, steps=steps or None, resolution=resolution or None, levels=levels or None,
        store=store,
    )  # fmt: skip
    open_data = fetch.OpenDataOptions(
        init=init, steps=steps or None, resolution=resolution or None, mirror=mirror
    )
    fetch.fetch_data(
        model=model or None, dataset=dataset, steps=steps or None,
        data_dir=data_paths(c, data_dir), source=source, endpoint=endpoint, hf_repo=hf_repo,
        list_only=list_, autodl_proxy=autodl_proxy, era5=era5, open_data=open_data,
    )  # fmt: skip


@gz_task(
    help={
        "example": "the bucket's ERA5 example to rebuild (default: the 1° one of 2022-01-01)",
        "store": "the ERA5 store to build it from: arco, wb2, a gs:// address or a local store",
        "endpoint": "GCS-compatible mirror or emulator URL for the bucket and the store",
        "data_dir": DATA_DIR_HELP,
    }
)
def check_era5(
    c, example: str = "source-era5_date-2022-01-01_res-1.0_levels-13_steps-01.nc",
    store: str = "arco", endpoint: Optional[str] = None, data_dir: Optional[str] = None,
):  # fmt: skip
    """Rebuild a bucket example from an ERA5 store and print the differences per variable."""
    from graphcast_zero.sources.converter_check import check_converter

    check_converter(data_paths(c, data_dir), example=example, store=store, endpoint=endpoint)


MAPS_HELP = {
    "variable": "variable(s) to map, comma-separated; atmospheric ones may carry a level "
    "(2m_temperature,geopotential:500)",
    "level": "pressure level in hPa for atmospheric variables without one (default 500)",
    "lead_time": "lead time(s) to map, comma-separated, e.g. 24h,120h,240h (default: the last)",
    "region": "zoom maps and animations to lat0,lat1,lon0,lon1 in degrees, e.g. 35,72,-25,45",
}


@gz_task(
    help={
        "params": "checkpoint .npz (default: the one in <data>/params)",
        "dataset": "example dataset .nc (default: the best fit in <data>/dataset)",
        "stats_dir": "folder with the three statistics files (default: <data>/stats)",
        "steps": "number of 6-hour forecast steps (0: every target in the dataset)",
        "output": "predictions .nc to write (default: <data>/outputs/<run>/predictions.nc)",
        "precision": PRECISION_HELP,
        "data_dir": DATA_DIR_HELP,
        "run_name": "name of the run folder under <data>/outputs (default: time and model)",
        "variable": MAPS_HELP["variable"],
        "level": MAPS_HELP["level"],
        "lead_time": MAPS_HELP["lead_time"],
        "region": MAPS_HELP["region"],
        "chunks": CHUNKS_HELP,
    }
)
def run_inference(
    c, params: Optional[str] = None, dataset: Optional[str] = None,
    stats_dir: Optional[str] = None, steps: int = 0, output: Optional[str] = None,
    precision: str = "auto", data_dir: Optional[str] = None, run_name: Optional[str] = None,
    variable: str = "2m_temperature", level: Optional[str] = None,
    lead_time: Optional[str] = None, region: Optional[str] = None, chunks: int = 0,
):  # fmt: skip
    """Run a GraphCast forecast and write predictions, metrics and pictures."""
    from graphcast_zero import workflow

    maps = workflow.MapOptions(variable=variable, level=level, lead_time=lead_time, region=region)
    workflow.run_inference(
        data_paths(c, data_dir), params=params, dataset=dataset, stats_dir=stats_dir,
        steps=steps, output=output, precision=precision, run_name=run_name, maps=maps,
        grid_chunks=chunks,
    )  # fmt: skip


TRAINING_HELP = {
    "params": "checkpoint .npz to start from (default: the one in <data>/params)",
    "random": "start from random weights instead of a checkpoint",
    "dataset": "example dataset .nc to train on (default: the best fit in <data>/dataset)",
    "steps": "autoregressive 6-hour steps in the loss (default 1)",
    "iterations": "optimiser iterations (default 10); with --steps-schedule: stop after this "
    "many (default: the whole schedule; --resume goes on)",
    "output": "checkpoint .npz to write (default: <data>/outputs/<run>/params.npz)",
    "data_dir": DATA_DIR_HELP,
    "stats_dir": "folder with the three statistics files (default: <data>/stats)",
    "learning_rate": "AdamW's peak rate (default 1e-3, which suits random weights; ~1e-5 to "
    "fine-tune)",
    "resume": "continue the checkpoint at --output (default: the newest trained one): its "
    "optimiser state, and an unfinished plan from its data position",
    "reset_optimizer": "with --resume: keep the weights, start the optimiser's moments afresh "
    "(the iteration count goes on from training.json); for a state that does not fit",
    "batch_size": "time windows per iteration over all devices (default: one per device)",
    "precision": PRECISION_HELP,
    "mesh_size": "--random: mesh refinements",
    "latent_size": "--random: latent width",
    "gnn_msg_steps": "--random: message-passing steps on the mesh",
    "hidden_layers": "--random: hidden layers per MLP",
    "levels": "--random: 13 or 37 pressure levels",
    "source": "dataset (a dataset file, default) or era5 (windows read from an ERA5 store)",
    "init_start": "--source era5: the first initialisation time trained on (2022-01-01T00)",
    "init_end": "--source era5: the last initialisation time trained on",
    "init_every": "--source era5: spacing of the initialisation times (default 6h)",
    "store": "--source era5: auto, arco, wb2, a gs:// Zarr address or a local store",
    "endpoint": "--source era5: GCS-compatible mirror or emulator URL for gs:// stores",
    "resolution": "--source era5: grid spacing in degrees (default: the model's)",
    "steps_schedule": "curriculum as steps:iterations,… e.g. 1:1000,2:300,3:300 (the loss's "
    "steps grow phase by phase)",
    "validation_start": "--source era5: first initialisation time of a held-out validation range",
    "validation_end": "--source era5: last initialisation time of the validation range",
    "validate_every": "score the validation range every N iterations (0: at the end)",
    "lr_schedule": "constant (default) or cosine: half-cosine decay to --final-learning-rate",
    "warmup_iterations": "linear warm-up from 0 to --learning-rate over N iterations",
    "final_learning_rate": "the rate a cosine schedule ends at (default 0)",
    "checkpoint_every": "save weights, optimiser state and data position every N iterations "
    "(0: at the end)",
    "seed": "the loader's shuffle seed",
    "prefetch": "batches read ahead in background threads (0: none)",
    "coordinator": "multi-process training: HOST:PORT of process 0 (the same on every "
    "process), or auto on SLURM / Open MPI / Cloud TPU",
    "num_processes": "multi-process training: how many processes train together",
    "process_id": "multi-process training: this process's index (0 writes the files)",
    "heartbeat_timeout": "multi-process training: seconds of silence after which a process "
    "counts as dead and the job ends",
    "chunks": CHUNKS_HELP,
    "remat": "recompute activations in the backward pass to save memory: auto (the cheapest "
    "that fits the device), off, steps (per step of a multi-step loss), processor (the mesh "
    "message steps) or all",
}


@gz_task(help=TRAINING_HELP)
def run_training(
    c, params: Optional[str] = None, random: bool = False, dataset: Optional[str] = None,
    steps: int = 0, iterations: int = 0, output: Optional[str] = None,
    data_dir: Optional[str] = None, stats_dir: Optional[str] = None,
    learning_rate: str = "", resume: bool = False, batch_size: int = 0,
    precision: str = "auto", mesh_size: int = 4, latent_size: int = 32, gnn_msg_steps: int = 4,
    hidden_layers: int = 1, levels: int = 13, reset_optimizer: bool = False,
    source: str = "dataset", init_start: str = "", init_end: str = "", init_every: str = "6h",
    store: str = "auto", endpoint: Optional[str] = None, resolution: float = 0.0,
    steps_schedule: str = "", validation_start: str = "", validation_end: str = "",
    validate_every: int = 0, lr_schedule: str = "", warmup_iterations: int = 0,
    final_learning_rate: str = "", checkpoint_every: int = 0, seed: int = 0, prefetch: int = 2,
    coordinator: str = "", num_processes: int = 0, process_id: int = 0,
    heartbeat_timeout: int = 60, chunks: int = 0, remat: str = "auto",
):  # fmt: skip
    """Train GraphCast on a dataset or an ERA5 store; save a checkpoint in the official format."""
    from graphcast_zero import workflow
    from graphcast_zero.distributed import DistributedOptions
    from graphcast_zero.memory import MemoryOptions

    random_model = workflow.RandomModel(
        mesh_size=mesh_size, latent_size=latent_size, gnn_msg_steps=gnn_msg_steps,
        hidden_layers=hidden_layers, levels=levels,
    )  # fmt: skip
    era5 = workflow.training_source(
        source, init_start=init_start, init_end=init_end, init_every=init_every, store=store,
        endpoint=endpoint, resolution=resolution or None, validation_start=validation_start,
        validation_end=validation_end,
    )  # fmt: skip
    plan = workflow.PlanOptions(
        steps=steps or None, iterations=iterations or None, steps_schedule=steps_schedule or None,
        learning_rate=learning_rate or None, lr_schedule=lr_schedule or None,
        warmup_iterations=warmup_iterations or None,
        final_learning_rate=final_learning_rate or None, batch_size=batch_size or None,
        seed=seed or None,
    )  # fmt: skip
    processes = None
    if coordinator:
        processes = DistributedOptions(
            coordinator, num_processes or None, process_id, heartbeat_timeout_s=heartbeat_timeout
        )
    workflow.run_training(
        data_paths(c, data_dir), params=params, random=random, random_model=random_model,
        dataset=dataset, stats_dir=stats_dir, era5=era5, plan=plan, precision=precision,
        cadence=workflow.Cadence(checkpoint_every, validate_every, prefetch),
        output=output, resume=resume, reset_optimizer=reset_optimizer, processes=processes,
        memory=MemoryOptions(grid_chunks=chunks, remat=remat),
    )  # fmt: skip


@gz_task(
    help={
        "init_start": "first initialisation time, UTC (e.g. 2022-01-01T00)",
        "init_end": "last initialisation time, UTC (e.g. 2022-03-31T12)",
        "every": "time between initialisations (e.g. 12h, 1d)",
        "steps": "6-hour forecast steps from each initialisation (40: 10 days)",
        "variables": "comma-separated variables to keep (default: every predicted one)",
        "levels": "comma-separated pressure levels to keep, hPa (default: the model's)",
        "store": "auto (the cheaper public ERA5 store), arco, wb2, an ERA5 store's address, or "
        "an official-layout dataset spanning the campaign",
        "endpoint": "GCS-compatible mirror or emulator URL for gs:// stores",
        "output": "Zarr store to write (default: <data>/outputs/hindcast-<start>-<end>.zarr)",
        "params": "checkpoint .npz (default: the one in <data>/params)",
        "stats_dir": "folder with the three statistics files (default: <data>/stats)",
        "resolution": "grid spacing in degrees, for a model that fits any grid (resolution 0)",
        "precision": PRECISION_HELP,
        "climatology": "climatology store in WeatherBench2's layout for ACC (default: computed "
        "from the source)",
        "climatology_period": "START/END of the computed climatology (default: the first "
        "initialisation to the last valid time)",
        "scheduler": "address of a running Dask scheduler (default: start a local cluster)",
        "workers": "workers of the local cluster (default: one per GPU, else two on a CPU)",
        "break_lock": "take over the store's lock left by a campaign that died",
        "data_dir": DATA_DIR_HELP,
    }
)
def hindcast(
    c, init_start: str, init_end: str, every: str = "12h", steps: int = 40,
    variables: Optional[str] = None, levels: Optional[str] = None, store: str = "auto",
    endpoint: Optional[str] = None, output: Optional[str] = None, params: Optional[str] = None,
    stats_dir: Optional[str] = None, resolution: float = 0.0, precision: str = "auto",
    climatology: Optional[str] = None, climatology_period: Optional[str] = None,
    scheduler: Optional[str] = None, workers: int = 0, break_lock: bool = False,
    data_dir: Optional[str] = None,
):  # fmt: skip
    """Forecast every initialisation of a range into one Zarr store (WeatherBench2 layout), on Dask."""
    from graphcast_zero.hindcast import HindcastOptions, run_hindcast

    options = HindcastOptions(
        init_start=init_start, init_end=init_end, every=every, steps=steps, variables=variables,
        levels=levels, store=store, endpoint=endpoint, output=output, params=params,
        stats_dir=stats_dir, resolution=resolution or None, precision=precision,
        climatology=climatology, climatology_period=climatology_period, scheduler=scheduler,
        workers=workers or None, break_lock=break_lock,
    )  # fmt: skip
    run_hindcast(data_paths(c, data_dir), options)


EVALUATE_HELP = {
    "run": "run folder under <data>/outputs (default: the newest)",
    "predictions": "predictions .nc to use instead of a run folder",
    "variable": "variable name, e.g. 2m_temperature",
    "level": "pressure level in hPa, for atmospheric variables",
    "lead_time": "lead time, e.g. 24h",
    "data_dir": DATA_DIR_HELP,
    "dataset": "dataset .nc with the targets (default: the one named in the run's run.json)",
}


@gz_task(help=dict(EVALUATE_HELP))
def evaluate(
    c, run: Optional[str] = None, predictions: Optional[str] = None,
    variable: Optional[str] = None, level: Optional[str] = None,
    lead_time: Optional[str] = None, data_dir: Optional[str] = None,
    dataset: Optional[str] = None,
):  # fmt: skip
    """Score predictions: latitude-weighted RMSE and bias per variable, level and lead time."""
    from graphcast_zero import workflow

    workflow.run_evaluate(
        data_paths(c, data_dir), run=run, predictions=predictions, dataset=dataset,
        variable=variable, level=level, lead_time=lead_time,
    )  # fmt: skip


@gz_task(help={**EVALUATE_HELP, **MAPS_HELP})
def plot(
    c, run: Optional[str] = None, predictions: Optional[str] = None,
    variable: Optional[str] = None, level: Optional[str] = None,
    lead_time: Optional[str] = None, data_dir: Optional[str] = None,
    dataset: Optional[str] = None, region: Optional[str] = None,
):  # fmt: skip
    """Draw maps, animations and error-versus-lead-time charts for a run."""
    from graphcast_zero import workflow

    workflow.run_plot(
        data_paths(c, data_dir), run=run, predictions=predictions, dataset=dataset,
        variable=variable, level=level, lead_time=lead_time, region=region,
    )  # fmt: skip


@gz_task(help={"data_dir": DATA_DIR_HELP})
def demo(c, data_dir: Optional[str] = None):
    """Run the whole path offline on a generated demo bundle: data, forecast, scores, training."""
    from graphcast_zero import workflow

    workflow.run_demo(data_paths(c, data_dir))


@gz_task(
    help={"pytest_args": 'extra pytest arguments, e.g. "-k checkpoint -x" (or give them after --)'}
)
def test(c, pytest_args: str = ""):
    """Run the test suite with pytest."""
    with c.cd(str(ROOT)):
        command = f"{shlex.quote(sys.executable)} -m pytest {pytest_args} {remainder(c)}"
        c.run(command, pty=False)


def remainder(c) -> str:
    """The arguments after `--`, quoted for the shell again.

    invoke joins them with spaces, so `-- -m "not slow"` would reach pytest as `-m not slow`;
    when they came from this process's command line, they are taken from there instead.
    """
    if "--" in sys.argv:
        after = sys.argv[sys.argv.index("--") + 1 :]
        if " ".join(after) == c.remainder:
            return shlex.join(after)
    return c.remainder


@gz_task(help={"fix": "apply ruff's fixes and reformat instead of only checking"})
def lint(c, fix: bool = False):
    """Check the code with ruff: lint rules and formatting."""
    paths = " ".join(path for path in LINT_PATHS if (ROOT / path).exists())
    ruff = f"{shlex.quote(sys.executable)} -m ruff"
    commands = (
        [f"{ruff} check --fix {paths}", f"{ruff} format {paths}"]
        if fix
        else [f"{ruff} check {paths}", f"{ruff} format --check {paths}"]
    )
    with c.cd(str(ROOT)):
        results = [c.run(command, warn=True, pty=False) for command in commands]
    if any(result.failed for result in results):
        raise Exit("lint: ruff found problems (`invoke lint --fix` fixes most)", code=1)
