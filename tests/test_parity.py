"""Parity with DeepMind's official implementation on the shipped fixture (official-small).

Tolerances are per variable, in units of σ, the standard deviation of the official predictions
(see tests/data/README.md): float32 max ≤ 1e-3 σ and mean ≤ 1e-4 σ; bfloat16 max ≤ 0.15 σ and
mean ≤ 2e-2 σ.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import pytest
import xarray as xr

from graphcast_zero import data, rollout
from graphcast_zero.loss import loss_and_diagnostics, loss_and_grads
from graphcast_zero.memory import MemoryPlan
from graphcast_zero.model.graphcast import init_params

from .conftest import OFFICIAL

# Compares values with reference files made on another machine (the `reference` marker); each
# case compiles real rollouts, losses and gradients: minutes in all on a small CPU.
pytestmark = [pytest.mark.reference, pytest.mark.slow]

REFERENCE = OFFICIAL / "reference"
# Every memory saving at once: 4,140 grid nodes in 7 chunks (the last padded), processor and
# per-step remat. Each must leave the maths, so the agreement with the official code, as is.
LEAN = MemoryPlan(grid_chunks=7, remat_processor=4, remat_steps=True)
PLANS = {"whole": MemoryPlan(), "lean": LEAN}


def _agreement(ours: xr.Dataset, reference: xr.Dataset) -> dict[str, tuple[float, float]]:
    result = {}
    for name in reference.data_vars:
        official = reference[name]
        mine = ours[name].transpose(*official.dims).values
        sigma = float(official.std())
        difference = np.abs(mine - official.values)
        result[name] = (difference.max() / sigma, difference.mean() / sigma)
    return result


def _predict(bundle, predictor, chunk_steps=None):
    predictions = rollout.predict(
        predictor, bundle.params, bundle.inputs, bundle.forcings, chunk_steps=chunk_steps
    )
    return data.arrays_to_dataset(
        predictions,
        lat=bundle.lat,
        lon=bundle.lon,
        levels=bundle.task_config.pressure_levels,
        lead_times=bundle.lead_times,
    )


def test_initialised_parameter_tree_is_identical_to_the_checkpoint(official_bundle):
    params = init_params(
        official_bundle.model_config,
        official_bundle.task_config,
        official_bundle.lat,
        official_bundle.lon,
        graphs=official_bundle.predictor("float32").graphs,
    )
    expected = official_bundle.checkpoint.params
    assert params.keys() == expected.keys()
    for module, leaves in expected.items():
        assert params[module].keys() == leaves.keys(), module
        for name, array in leaves.items():
            assert params[module][name].shape == array.shape, (module, name)
            assert params[module][name].dtype == array.dtype, (module, name)


# The gathered (fast) path also runs in chunks: 4 steps as a chunk of 3 and a padded one.
@pytest.mark.parametrize(
    "gather_first_layer, chunk_steps, plan",
    [(True, 3, "whole"), (False, None, "whole"), (True, 3, "lean"), (False, None, "lean")],
    ids=["gathered", "concatenated", "gathered-lean", "concatenated-lean"],
)
def test_float32_rollout_matches_official(official_bundle, gather_first_layer, chunk_steps, plan):
    predictor = official_bundle.predictor("float32", gather_first_layer)
    predictor = dataclasses.replace(predictor, memory=PLANS[plan])
    agreement = _agreement(
        _predict(official_bundle, predictor, chunk_steps),
        xr.load_dataset(REFERENCE / "predictions_float32.nc"),
    )
    for name, (worst, mean) in agreement.items():
        assert worst <= 1e-3, (name, worst)
        assert mean <= 1e-4, (name, mean)


@pytest.mark.parametrize("plan", PLANS)
def test_bfloat16_rollout_matches_official(official_bundle, plan):
    predictor = dataclasses.replace(official_bundle.predictor("bfloat16"), memory=PLANS[plan])
    agreement = _agreement(
        _predict(official_bundle, predictor), xr.load_dataset(REFERENCE / "predictions.nc")
    )
    for name, (worst, mean) in agreement.items():
        assert worst <= 0.15, (name, worst)
        assert mean <= 2e-2, (name, mean)


@pytest.fixture(scope="module", params=PLANS)
def one_step_loss(official_bundle, request):
    predictor = official_bundle.predictor("bfloat16")
    predictor = dataclasses.replace(predictor, memory=PLANS[request.param])
    inputs, targets, forcings = official_bundle.extract(steps=1)
    (loss, diagnostics), grads = jax.jit(
        lambda p: loss_and_grads(predictor, p, predictor.constants(), inputs, targets, forcings)
    )(official_bundle.params)
    return float(loss), {k: float(v) for k, v in diagnostics.items()}, grads


def test_one_step_loss_matches_official(one_step_loss):
    expected = json.loads((REFERENCE / "loss.json").read_text())["train_1step"]
    loss, diagnostics, _ = one_step_loss
    assert loss == pytest.approx(expected["loss"], rel=1e-2)
    for name, value in expected["diagnostics"].items():
        assert diagnostics[name] == pytest.approx(value, rel=2e-2), name


def test_one_step_gradients_agree_in_direction_and_magnitude(one_step_loss):
    _, _, grads = one_step_loss
    with np.load(REFERENCE / "grads_train_1step.npz") as reference:
        official = {k: reference[k] for k in reference.files}
    ours = {
        f"params:{module}:{name}": np.asarray(value)
        for module, leaves in grads.items()
        for name, value in leaves.items()
    }
    assert ours.keys() == official.keys()
    a = np.concatenate([ours[k].ravel() for k in sorted(ours)])
    b = np.concatenate([official[k].ravel() for k in sorted(official)]).astype(np.float64)
    cosine = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert cosine > 0.99
    assert np.linalg.norm(a) / np.linalg.norm(b) == pytest.approx(1.0, abs=0.05)
    expected = json.loads((REFERENCE / "loss.json").read_text())["train_1step"]
    # loss.json's mean |grad| is the mean over parameter arrays of each array's mean |grad|.
    mean_abs = np.mean([np.abs(v).mean() for v in ours.values()])
    assert mean_abs == pytest.approx(expected["mean_abs_grad"], rel=0.05)


@pytest.mark.parametrize("plan", PLANS)
def test_four_step_loss_matches_official(official_bundle, plan):
    predictor = dataclasses.replace(official_bundle.predictor("bfloat16"), memory=PLANS[plan])
    inputs, targets, forcings = official_bundle.extract(steps=4)
    loss, _ = jax.jit(
        lambda p: loss_and_diagnostics(
            predictor, p, predictor.constants(), inputs, targets, forcings
        )
    )(official_bundle.params)
    expected = json.loads((REFERENCE / "loss.json").read_text())["eval_4step"]["loss"]
    assert float(loss) == pytest.approx(expected, rel=2e-2)
