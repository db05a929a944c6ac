"""GraphCast from Zero tasks: `invoke --list` shows them, `invoke --help TASK` explains one.

Each task is a thin wrapper: it resolves the data folder, calls one function of the
`graphcast_zero` package, and turns a library error into a one-line message and a non-zero exit.
"""

from __future__ import annotations

import functools
import shlex
import sys
from pathlib import Path

from invoke import Exit, task

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
LINT_PATHS = ("src", "tests", "tasks.py", "benchmarks")
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


def gz_task(**task_options):
    """Like `invoke.task`, but a GraphCastZeroError ends the task with its one-line message."""

    def decorate(body):
        @functools.wraps(body)
        def run_body(c, *args, **kwargs):
            try:
                return body(c, *args, **kwargs)
            except GraphCastZeroError as err:
                raise Exit(str(err), code=1) from None

        return task(**task_options)(run_body)

    return decorate


def data_paths(c, data_dir: str | None) -> DataPaths:
    """The data folder: --data-dir, else $GRAPHCAST_DATA_DIR, else invoke config, else ./data."""
    return resolve_data_dir(data_dir, config_value=c.config.get("data_dir"))


@gz_task(
    help={
        "data_dir": DATA_DIR_HELP,
        "dry_run": "show what would be done, change nothing",
        "kernel_name": "name of the Jupyter kernel to install (default: graphcast)",
    }
)
def setup(c, data_dir=None, dry_run=False, kernel_name=environment.KERNEL_NAME):
    """Create the data folders and install a Jupyter kernel for this Python."""
    print(environment.run_setup(data_paths(c, data_dir), kernel_name, dry_run=dry_run))


@gz_task(
    help={
        "data_dir": DATA_DIR_HELP,
        "bucket_timeout": "seconds to wait for the bucket before calling it unreachable",
        "endpoint": "probe this GCS-compatible mirror or emulator instead of storage.googleapis.com",
    }
)
def doctor(c, data_dir=None, bucket_timeout=3.0, endpoint=None):
    """Check Python, JAX, GPU, disk, data files and the bucket; print a table with hints."""
    checks = environment.run_doctor(data_paths(c, data_dir), endpoint, bucket_timeout)
    print(environment.format_table(checks))
    failed = environment.essential_failures(checks)
    if failed:
        names = ", ".join(check.name for check in failed)
        raise Exit(f"doctor: essential checks failed: {names}", code=1)


@gz_task(
    help={
        "model": "published model: small (1.0°, 13 levels), full (0.25°, 37) or operational (0.25°, 13, HRES)",
        "dataset": "example dataset file name from the bucket, or 'auto' for the best fit to the model",
        "steps": "need at least this many 6-hour target steps in the dataset (0: any)",
        "list": "list what the bucket holds and what is already local, then stop",
        "data_dir": DATA_DIR_HELP,
        "endpoint": "GCS-compatible mirror or emulator URL instead of storage.googleapis.com",
        "source": "gcs (the public bucket), hf (Hugging Face mirror) or demo (generated, offline)",
        "hf_repo": "Hugging Face dataset repo mirroring dataset/ and stats/ (with --source hf; "
        "the host comes from $HF_ENDPOINT or --endpoint)",
        "autodl_proxy": "on AutoDL: use the academic proxy from /etc/network_turbo (read, not run)",
    }
)
def fetch_data(
    c, model="small", dataset="auto", steps=0, list_=False, data_dir=None, endpoint=None,
    source="gcs", hf_repo=None, autodl_proxy=False,
):  # fmt: skip
    """Fetch a checkpoint, its statistics and a matching example dataset into the data folder."""
    from graphcast_zero import fetch

    fetch.fetch_data(
        model=model, dataset=dataset, steps=steps or None, data_dir=data_paths(c, data_dir),
        source=source, endpoint=endpoint, hf_repo=hf_repo,
        list_only=list_, autodl_proxy=autodl_proxy,
    )  # fmt: skip


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
        "chunks": CHUNKS_HELP,
    }
)
def run_inference(
    c, params=None, dataset=None, stats_dir=None, steps=0, output=None, precision="auto",
    data_dir=None, run_name=None, chunks=0,
):  # fmt: skip
    """Run a GraphCast forecast and write predictions, metrics and pictures."""
    from graphcast_zero import workflow

    workflow.run_inference(
        data_paths(c, data_dir), params, dataset, stats_dir, steps, output, precision, run_name,
        grid_chunks=chunks,
    )  # fmt: skip


@gz_task(
    help={
        "params": "checkpoint .npz to start from (default: the one in <data>/params)",
        "random": "start from random weights instead of a checkpoint",
        "dataset": "example dataset .nc to train on (default: the best fit in <data>/dataset)",
        "steps": "autoregressive 6-hour steps in the loss",
        "iterations": "optimiser iterations",
        "output": "checkpoint .npz to write (default: <data>/outputs/<run>/params.npz)",
        "data_dir": DATA_DIR_HELP,
        "stats_dir": "folder with the three statistics files (default: <data>/stats)",
        "learning_rate": "AdamW learning rate (1e-3 suits random weights; ~1e-5 to fine-tune)",
        "resume": "continue the checkpoint at --output (default: the newest trained one)",
        "batch_size": "time windows per iteration (default: one per device)",
        "precision": PRECISION_HELP,
        "mesh_size": "--random: mesh refinements",
        "latent_size": "--random: latent width",
        "gnn_msg_steps": "--random: message-passing steps on the mesh",
        "hidden_layers": "--random: hidden layers per MLP",
        "levels": "--random: 13 or 37 pressure levels",
        "chunks": CHUNKS_HELP,
        "remat": "recompute activations in the backward pass to save memory: auto (the "
        "cheapest that fits the device), off, steps (per step of a multi-step loss), processor "
        "(the mesh message steps) or all",
    }
)
def run_training(
    c, params=None, random=False, dataset=None, steps=1, iterations=10, output=None,
    data_dir=None, stats_dir=None, learning_rate="1e-3", resume=False, batch_size=0,
    precision="auto", mesh_size=4, latent_size=32, gnn_msg_steps=4, hidden_layers=1, levels=13,
    chunks=0, remat="auto",
):  # fmt: skip
    """Train GraphCast for a few iterations and save a checkpoint in the official format."""
    from graphcast_zero import workflow

    workflow.run_training(
        data_paths(c, data_dir), params, random, dataset, stats_dir, steps, iterations,
        learning_rate, output, resume, batch_size or None, precision,
        dict(mesh_size=mesh_size, latent_size=latent_size, gnn_msg_steps=gnn_msg_steps,
             hidden_layers=hidden_layers, levels=levels),
        grid_chunks=chunks, remat=remat,
    )  # fmt: skip


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
    c, run=None, predictions=None, variable=None, level=None, lead_time=None, data_dir=None,
    dataset=None,
):  # fmt: skip
    """Score predictions: latitude-weighted RMSE and bias per variable, level and lead time."""
    from graphcast_zero import workflow

    workflow.run_evaluate(
        data_paths(c, data_dir), run, predictions, dataset, variable, level, lead_time
    )


@gz_task(help=dict(EVALUATE_HELP))
def plot(
    c, run=None, predictions=None, variable=None, level=None, lead_time=None, data_dir=None,
    dataset=None,
):  # fmt: skip
    """Draw maps, an animation and error-versus-lead-time charts for a run."""
    from graphcast_zero import workflow

    workflow.run_plot(
        data_paths(c, data_dir), run, predictions, dataset, variable, level, lead_time
    )


@gz_task(help={"data_dir": DATA_DIR_HELP})
def demo(c, data_dir=None):
    """Run the whole path offline on a generated demo bundle: data, forecast, scores, training."""
    from graphcast_zero import workflow

    workflow.run_demo(data_paths(c, data_dir))


@gz_task(
    help={"pytest_args": 'extra pytest arguments, e.g. "-k checkpoint -x" (or give them after --)'}
)
def test(c, pytest_args=""):
    """Run the test suite with pytest."""
    with c.cd(str(ROOT)):
        c.run(f"{shlex.quote(sys.executable)} -m pytest {pytest_args} {c.remainder}", pty=False)


@gz_task(help={"fix": "apply ruff's fixes and reformat instead of only checking"})
def lint(c, fix=False):
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
