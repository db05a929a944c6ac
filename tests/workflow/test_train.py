"""The training task end to end on the official-small fixture: loss, checkpoint, resume, devices."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from graphcast_zero import workflow
from graphcast_zero.checkpoint import load_checkpoint
from graphcast_zero.errors import InputError
from graphcast_zero.memory import MemoryOptions
from graphcast_zero.paths import DataPaths

from ..conftest import FIXTURE_DATASET, OFFICIAL
from .conftest import DATASET_NAME, PARAMS_NAME, assert_picture, copy_fixture, replace_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory, compile_cache):
    """Four iterations on one 3-frame window, so every iteration sees the same batch."""
    paths = copy_fixture(tmp_path_factory.mktemp("train"))
    replace_dataset(paths, lambda d: d.isel(time=slice(0, 3)))
    output = paths.outputs / "t" / "params.npz"
    result = workflow.run_training(paths, iterations=4, output=output, progress=False,
                                   log=lambda _: None)  # fmt: skip
    return paths, result


@pytest.mark.slow
def test_training_lowers_the_loss(trained):
    _, result = trained
    assert result.iterations_done == 4 and result.num_devices == 1 and result.batch_size == 1
    losses = np.asarray(result.losses)
    assert np.all(np.diff(losses) < 0), losses
    assert losses[-1] < 0.9 * losses[0]


@pytest.mark.slow
def test_trained_checkpoint_loads_and_forecasts(trained, forecast):
    paths, result = trained
    start = load_checkpoint(OFFICIAL / "params" / PARAMS_NAME)
    checkpoint = load_checkpoint(result.checkpoint_path)
    assert checkpoint.model_config == start.model_config
    assert checkpoint.task_config == start.task_config
    assert "4 iterations" in checkpoint.description
    moved = [
        not np.allclose(checkpoint.params[m][n], start.params[m][n])
        for m in start.params
        for n in start.params[m]
    ]
    assert np.mean(moved) > 0.9
    shutil.copy(FIXTURE_DATASET, paths.dataset / DATASET_NAME)  # back to 4 steps
    run = workflow.run_inference(paths, params=result.checkpoint_path, run_name="after",
                                 progress=False, log=lambda _: None)  # fmt: skip
    assert run.timings["graphs_from_cache"]  # training on this grid saved them
    untrained = forecast[1].predictions["2m_temperature"].values
    assert not np.allclose(run.predictions["2m_temperature"].values, untrained)
    info = json.loads((result.checkpoint_path.parent / "training.json").read_text())
    assert info["losses"] == result.losses and info["iterations"] == 4
    # The first plan of the ladder (whole grid, nothing recomputed) was compiled and fitted.
    plan = info["memory"]
    assert plan["how_chosen"] == "fits" and plan["grid_chunks"] == 1
    assert (
        not plan["remat_processor"] and 0 < plan["estimated_device_bytes"] <= plan["budget_bytes"]
    )
    assert_picture(result.checkpoint_path.parent / "loss.png")


@pytest.mark.slow
def test_resume_continues_with_the_optimizer_state(trained):
    paths, first = trained
    replace_dataset(paths, lambda d: d.isel(time=slice(0, 3)))
    again = workflow.run_training(paths, iterations=2, resume=True, progress=False,
                                  log=lambda _: None)  # fmt: skip
    assert again.checkpoint_path == first.checkpoint_path
    assert again.iterations_done == 6
    assert again.losses[0] < first.losses[-1] and again.losses[1] < again.losses[0]
    info = json.loads((first.checkpoint_path.parent / "training.json").read_text())
    assert info["losses"] == first.losses + again.losses
    with pytest.raises(InputError, match="drop --params/--random"):
        workflow.run_training(paths, random=True, resume=True, log=lambda _: None)


@pytest.mark.slow
def test_a_state_that_does_not_fit_needs_reset_optimizer(trained, tmp_path):
    paths, _ = trained
    copy = DataPaths(tmp_path / "data")  # its own folder: the other tests resume the newest run
    shutil.copytree(paths.root, copy.root)
    target = copy.outputs / "t" / "params.npz"
    state = target.parent / workflow.OPTIMIZER_STATE
    with np.load(state) as saved:
        arrays = {name: saved[name] for name in saved.files}
    leaves = sum(name.startswith("leaf_") for name in arrays)
    del arrays[f"leaf_{leaves - 1}"]  # as if saved by an optimiser with one state array fewer
    np.savez(state, **arrays)
    before = json.loads((target.parent / workflow.HISTORY).read_text())
    options = dict(output=target, resume=True, iterations=1, progress=False, log=lambda _: None)
    with pytest.raises(InputError, match=f"holds {leaves - 1} arrays .*need {leaves}") as raised:
        workflow.run_training(copy, **options)
    assert "\n" not in str(raised.value) and "--reset-optimizer" in str(raised.value)
    again = workflow.run_training(copy, reset_optimizer=True, **options)
    # Fresh moments, but the weights' iterations go on from training.json.
    assert again.iterations_done == before["iterations"] + 1
    after = json.loads((target.parent / workflow.HISTORY).read_text())
    assert after["iterations"] == again.iterations_done
    assert after["losses"] == before["losses"] + again.losses
    with np.load(state) as saved:
        assert sum(name.startswith("leaf_") for name in saved.files) == leaves
        assert int(saved["iterations"]) == again.iterations_done
    with pytest.raises(InputError, match="--reset-optimizer only applies with --resume"):
        workflow.run_training(copy, reset_optimizer=True, log=lambda _: None)


DATA_PARALLEL = """
import json, sys
import jax, numpy as np
from pathlib import Path
from graphcast_zero import loader, loss, train_loop, workflow
from graphcast_zero.checkpoint import load_checkpoint
from graphcast_zero.paths import DataPaths
from graphcast_zero.predictor import build_predictor

paths = DataPaths(Path(sys.argv[1]))
result = workflow.run_training(paths, iterations=1, batch_size=2, precision="float32",
                               output=paths.outputs / "dp" / "params.npz", progress=False)
setup = workflow.load_setup(paths, steps=1)
predictor = build_predictor(setup.checkpoint.model_config, setup.checkpoint.task_config,
                            setup.statistics, setup.dataset.lat.values, setup.dataset.lon.values,
                            precision="float32")
windows = train_loop.time_windows(setup.dataset, predictor, 1)
batch = next(loader.Batches(windows, 2, 1, seed=0))  # run_training's first batch
placed = train_loop.Placement.over_all_devices().batched(batch.inputs)
one = jax.devices()[0]
on_one = lambda tree: jax.device_put(tree, one)
value, _ = jax.jit(lambda p, c, i, t, f: loss.loss_and_diagnostics(predictor, p, c, i, t, f))(
    on_one(setup.checkpoint.params), on_one(predictor.constants()), on_one(batch.inputs),
    on_one(batch.targets), on_one(batch.forcings))
print(json.dumps({"devices": result.num_devices, "loss": result.losses[0],
                  "single_device_loss": float(value),
                  "shards": len(placed["2m_temperature"].addressable_shards),
                  "shard_batch": placed["2m_temperature"].addressable_shards[0].data.shape[0]}))
"""


@pytest.mark.slow
def test_data_parallel_training_on_two_cpu_devices(tmp_path, compile_cache):
    paths = copy_fixture(tmp_path / "data")
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(compile_cache),
    }
    script = textwrap.dedent(DATA_PARALLEL)
    done = subprocess.run([sys.executable, "-c", script, str(paths.root)], capture_output=True,
                          text=True, timeout=900, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["devices"] == 2 and report["shards"] == 2 and report["shard_batch"] == 1
    assert report["loss"] == pytest.approx(report["single_device_loss"], rel=1e-5)
    assert load_checkpoint(paths.outputs / "dp" / "params.npz").model_config.mesh_size == 3


@pytest.mark.parametrize(
    "options, message",
    [
        (MemoryOptions(remat="sometimes"), "--remat must be one of auto, off, steps, processor"),
        (MemoryOptions(grid_chunks=-2), "--chunks must be 0 (choose) or more, not -2"),
    ],
)
def test_memory_options_are_checked_before_training(tmp_path, options, message):
    paths = copy_fixture(tmp_path / "data")
    with pytest.raises(InputError, match=re.escape(message)):
        workflow.run_training(paths, iterations=1, memory=options, progress=False,
                              log=lambda _: None)  # fmt: skip


def test_a_training_file_with_nan_is_a_one_line_error_before_training(tmp_path):
    paths = copy_fixture(tmp_path / "data")

    def spoil(dataset):
        dataset["2m_temperature"][0, 3, 5, 7] = np.nan  # the second target frame
        return dataset

    replace_dataset(paths, spoil)
    message = f"dataset {DATASET_NAME}: 2m_temperature has 1 NaN/inf values in the frames used"
    with pytest.raises(InputError, match=re.escape(message)):
        workflow.run_training(paths, iterations=1, progress=False, log=lambda _: None)
    assert not any(paths.outputs.glob("*"))  # nothing written
