"""The predictor: precision choice, and step-independent terms computed once per forecast."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from graphcast_zero.predictor import default_edge_term_reuse, resolve_precision


@pytest.mark.parametrize(
    "precision, backend, expected",
    [
        ("auto", "cpu", "float32"),
        ("auto", "gpu", "bfloat16"),
        ("auto", "tpu", "bfloat16"),
        ("bfloat16", "cpu", "bfloat16"),
        ("float32", "gpu", "float32"),
    ],
)
def test_auto_precision_is_float32_on_cpus_only(precision, backend, expected):
    assert resolve_precision(precision, backend) == expected


@pytest.mark.parametrize("backend, expected", [("cpu", True), ("gpu", False), ("tpu", False)])
def test_edge_terms_are_kept_for_a_forecast_on_cpus_only(backend, expected):
    assert default_edge_term_reuse(backend) is expected


def test_unknown_precision_names_the_choices():
    with pytest.raises(ValueError, match="auto, bfloat16, float32, not 'half'"):
        resolve_precision("half")


@pytest.fixture(scope="module")
def step_inputs(official_bundle):
    inputs, _, forcings = official_bundle.extract(steps=1)
    return inputs, forcings


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_prepared_constants_give_the_same_step(official_bundle, step_inputs, precision):
    predictor = official_bundle.predictor(precision)
    params = official_bundle.params
    inputs, forcings = step_inputs
    step = jax.jit(predictor.normalized_outputs)
    unprepared = np.asarray(step(params, predictor.constants(), inputs, forcings))
    prepared_constants = jax.jit(predictor.prepare)(params, predictor.constants())
    prepared = np.asarray(step(params, prepared_constants, inputs, forcings))
    # Outputs are normalised (about unit scale): float32 allows reassociation noise only. In
    # bfloat16 the two programs fuse and round differently, so values land up to two bfloat16
    # steps apart (a step is 1/64 between 2 and 4).
    if precision == "float32":
        np.testing.assert_allclose(prepared, unprepared, atol=1e-5)
    else:
        np.testing.assert_allclose(prepared, unprepared, atol=1 / 32, rtol=1 / 64)


def test_static_terms_keep_only_what_later_steps_read(official_bundle):
    predictor = official_bundle.predictor("float32")
    static = jax.eval_shape(predictor.prepare, official_bundle.params, predictor.constants())[
        "static"
    ]
    latent = predictor.model_config.latent_size
    graphs = predictor.graphs
    # Encoder and decoder pass messages once: only the first edge product is needed.
    assert static["grid2mesh"]["grid2mesh"].keys() == {"first_product"}
    assert static["mesh2grid"]["mesh2grid"].keys() == {"first_product"}
    # The processor's later steps add to the encoded edges, so those are kept too.
    assert static["mesh"]["mesh"].keys() == {"first_product", "latents"}
    num_edges = {
        "grid2mesh": graphs.grid2mesh.senders.shape[0],
        "mesh": graphs.mesh.senders.shape[0],
        "mesh2grid": graphs.mesh2grid.senders.shape[0],
    }
    for network, edge_sets in static.items():
        for terms in edge_sets.values():
            # No batch axis: the same terms serve every example of a batch.
            assert terms["first_product"].shape == (num_edges[network], latent)
            assert terms["first_product"].dtype == np.float32


def test_prepare_returns_prepared_constants_unchanged(official_bundle):
    predictor = official_bundle.predictor("float32")
    prepared = predictor.prepare(official_bundle.params, predictor.constants())
    assert predictor.prepare(official_bundle.params, prepared) is prepared


@pytest.mark.slow
def test_training_recomputes_prepared_terms_from_its_parameters(official_bundle):
    from graphcast_zero.loss import loss_and_grads as gradients

    predictor = official_bundle.predictor("float32")
    params = official_bundle.params
    inputs, targets, forcings = official_bundle.extract(steps=1)
    stale = jax.tree.map(lambda p: p * 0.5, params)  # terms prepared with other parameters
    stale_constants = predictor.prepare(stale, predictor.constants())

    def loss_and_grads(constants):
        return jax.jit(gradients, static_argnums=0)(
            predictor, params, constants, inputs, targets, forcings
        )

    (loss, _), grads = loss_and_grads(predictor.constants())
    (stale_loss, _), stale_grads = loss_and_grads(stale_constants)
    assert float(stale_loss) == float(loss)
    encoder = "grid2mesh_gnn/~_networks_builder/encoder_edges_grid2mesh_mlp/~/linear_0"
    np.testing.assert_array_equal(stale_grads[encoder]["w"], grads[encoder]["w"])
    assert np.abs(grads[encoder]["w"]).max() > 0  # gradients reach the edge encoder


@pytest.mark.slow
def test_without_reuse_each_step_computes_its_own_edge_terms(official_bundle, step_inputs):
    import dataclasses

    from graphcast_zero import rollout

    reusing = official_bundle.predictor("float32")
    assert reusing.reuse_edge_terms  # the tests run on a CPU
    fresh = dataclasses.replace(reusing, reuse_edge_terms=False)
    constants = fresh.constants()
    assert fresh.prepare(official_bundle.params, constants) is constants
    inputs, forcings = step_inputs
    outputs = [
        jax.jit(rollout.rollout_scan, static_argnums=0)(
            predictor, official_bundle.params, predictor.constants(), inputs, forcings
        )[1]
        for predictor in (reusing, fresh)
    ]
    for name in outputs[0]:
        np.testing.assert_allclose(outputs[1][name], outputs[0][name], rtol=1e-5, atol=1e-5)
