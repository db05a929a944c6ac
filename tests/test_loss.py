"""Loss weights by hand, and the loss's gradient program on a tiny random model.

The latitude weights are ``evaluation.latitude_weights`` (tested there too); here they are checked
against the official loss's own formula on the grids that loss accepts.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from graphcast_zero import data, loss, memory
from graphcast_zero.config import TASK_13
from graphcast_zero.evaluation import latitude_weights
from graphcast_zero.memory import MemoryPlan
from graphcast_zero.model.graphcast import init_params
from graphcast_zero.predictor import build_predictor
from graphcast_zero.statistics import load_statistics

from .conftest import FIXTURE_DATASET, OFFICIAL, TINY


def test_latitude_weights_with_poles():
    weights = latitude_weights(np.arange(-90, 91, 30.0))
    assert weights.mean() == pytest.approx(1.0)
    # Pole rows cover a cap of half a band: sin²(Δ/4) against sin(Δ/2)·cos(lat) inside.
    inner = np.sin(np.deg2rad(15)) * np.cos(np.deg2rad([-60, -30, 0, 30, 60]))
    pole = np.sin(np.deg2rad(7.5)) ** 2
    expected = np.array([pole, *inner, pole])
    np.testing.assert_allclose(weights, expected / expected.mean())


def test_latitude_weights_without_poles_are_cosines():
    lat = np.arange(-87, 88, 6.0)
    weights = latitude_weights(lat)
    np.testing.assert_allclose(weights, np.cos(np.deg2rad(lat)) / np.cos(np.deg2rad(lat)).mean())


@pytest.mark.parametrize("lat", [[-90, -30, 10, 90], [-80, 0, 80]])
def test_latitude_weights_reject_other_grids(lat):
    with pytest.raises(ValueError):
        loss.check_latitudes(lat)


def _official_weights(lat: np.ndarray) -> np.ndarray:
    """The official loss's formula: cos(lat)·sin(Δ/2) inside, sin²(Δ/4) on pole rows."""
    delta = np.deg2rad(lat[1] - lat[0])
    weights = np.cos(np.deg2rad(lat)) * np.sin(delta / 2)
    if np.isclose(lat[-1], 90.0):
        weights[[0, -1]] = np.sin(delta / 4) ** 2
    return weights / weights.mean()


@pytest.mark.parametrize("resolution", [0.25, 1.0, 4.0, 9.0, 12.0])
@pytest.mark.parametrize("poles", [True, False], ids=["poles", "offset"])
def test_latitude_weights_equal_the_official_formula_in_the_loss_dtypes(resolution, poles):
    lat = (
        np.linspace(-90, 90, round(180 / resolution) + 1)
        if poles
        else np.arange(-90 + resolution / 2, 90, resolution)
    )
    loss.check_latitudes(lat)
    ours, official = latitude_weights(lat).values, _official_weights(lat)
    # Both in float64 here, by two formulas ~1e-13 apart: bit-identical in float32 and bfloat16
    # on these grids, but a value could in principle round to its float32 neighbour.
    np.testing.assert_array_max_ulp(ours.astype(np.float32), official.astype(np.float32), 1)
    np.testing.assert_array_equal(ours.astype(jnp.bfloat16), official.astype(jnp.bfloat16))


def test_level_weights_are_proportional_to_pressure():
    np.testing.assert_allclose(loss.level_weights([250, 500, 750]), [0.5, 1.0, 1.5])


def test_error_of_one_everywhere_gives_unit_loss_per_variable():
    weights = loss.LossWeights(
        latitude=latitude_weights(np.arange(-90, 91, 45.0)).values[:, None, None],
        level=loss.level_weights([100, 500, 900]),
    )
    target = {"t": jnp.zeros((2, 1, 5, 8, 3)), "s": jnp.zeros((2, 1, 5, 8, 1))}
    prediction = {n: v + 1 for n, v in target.items()}
    losses = loss.per_variable_losses(prediction, target, weights, jnp.float32)
    for value in losses.values():
        assert value.shape == (2,)
        np.testing.assert_allclose(value, 1.0, rtol=1e-6)


@pytest.mark.slow
def test_remat_checkpoints_only_losses_over_several_steps(tiny):
    predictor, params, (inputs, targets, forcings) = tiny
    constants = predictor.constants()

    def program(steps: int, remat: bool) -> str:
        frames = [{n: v[:, :steps] for n, v in d.items()} for d in (targets, forcings)]
        grads = jax.jit(loss.loss_and_grads, static_argnums=(0, 6))
        return grads.lower(predictor, params, constants, inputs, *frames, remat).as_text()

    # One step: checkpointing could free nothing, so the program is the plain one.
    assert program(1, remat=True) == program(1, remat=False)
    assert program(2, remat=True) != program(2, remat=False)


@pytest.fixture(scope="module")
def deeper():
    """The fixture grid (4,140 nodes) with five message steps: processor remat groups of four
    and one, and three loss steps."""
    dataset = xr.load_dataset(FIXTURE_DATASET)
    lat, lon = dataset.lat.values, dataset.lon.values
    model = dataclasses.replace(TINY, mesh_size=2, latent_size=64, gnn_msg_steps=5)
    predictor = build_predictor(
        model, TASK_13, load_statistics(OFFICIAL / "stats"), lat, lon, precision="float32"
    )
    params = jax.tree.map(
        jnp.asarray, init_params(model, TASK_13, lat, lon, seed=2, graphs=predictor.graphs)
    )
    parts = data.extract_inputs_targets_forcings(dataset, TASK_13, slice("6h", "18h"))
    return predictor, params, tuple(data.dataset_to_arrays(d) for d in parts)


# 4,140 grid nodes in 6 chunks (the last padded), nested processor remat, step remat.
LEAN = MemoryPlan(grid_chunks=6, remat_processor=4, remat_steps=True)


@pytest.mark.slow
def test_multi_step_gradients_do_not_depend_on_the_memory_plan(deeper):
    predictor, params, (inputs, targets, forcings) = deeper

    def loss_and_grads(plan):
        planned = dataclasses.replace(predictor, memory=plan)
        return jax.jit(loss.loss_and_grads, static_argnums=0)(
            planned, params, planned.constants(), inputs, targets, forcings
        )

    (whole_loss, _), grads = loss_and_grads(MemoryPlan())
    (lean_loss, _), lean_grads = loss_and_grads(LEAN)
    # Same maths; the chunked encoder sums its float32 messages in another order.
    assert float(lean_loss) == pytest.approx(float(whole_loss), rel=1e-6)
    for module, leaves in grads.items():
        for name, value in leaves.items():
            scale = np.abs(value).max() + 1e-12
            difference = np.abs(np.asarray(lean_grads[module][name]) - value).max()
            assert difference <= 1e-5 * scale, (module, name)


@pytest.mark.slow
def test_chunks_and_remat_shrink_the_compiled_program(deeper):
    predictor, params, (inputs, targets, forcings) = deeper

    def device_bytes(plan):
        planned = dataclasses.replace(predictor, memory=plan)
        program = jax.jit(loss.loss_and_grads, static_argnums=0)
        lowered = program.lower(planned, params, planned.constants(), inputs, targets, forcings)
        return memory.compiled_bytes(lowered.compile())

    whole, lean = device_bytes(MemoryPlan()), device_bytes(LEAN)
    # XLA's CPU buffer assignment: 264 MiB against 60 MiB when measured; a quarter to spare.
    assert lean < whole / 3
