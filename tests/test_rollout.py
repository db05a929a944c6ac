"""The rollout: its first step, buffer donation per platform, predictions streamed to the host
step by step, and the choice of its memory plan."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from graphcast_zero import memory, rollout
from graphcast_zero.memory import MemoryPlan


@pytest.mark.slow
def test_rollout_first_step_equals_one_step(tiny):
    predictor, params, (inputs, _, forcings) = tiny
    predictions = rollout.predict(predictor, params, inputs, forcings)
    first = {n: v[:, :1] for n, v in forcings.items()}
    single = jax.jit(predictor.one_step)(params, predictor.constants(), inputs, first)
    assert predictions["temperature"].shape == (1, 2, 16, 45, 13)
    for name, value in single.items():
        np.testing.assert_allclose(predictions[name][:, :1], value, rtol=1e-5, atol=1e-4)


def test_chunks_donate_their_state_except_on_cpus(tiny):
    predictor, params, (inputs, _, forcings) = tiny

    def lowered(backend: str) -> str:
        program = rollout.chunk_program(predictor, backend)
        return program.lower(params, predictor.constants(), inputs, forcings).as_text()

    donated = ("tf.aliasing_output", "jax.buffer_donor")
    assert any(mark in lowered("gpu") for mark in donated)
    assert not any(mark in lowered("cpu") for mark in donated)


@pytest.fixture(scope="module")
def forecast(official_bundle):
    predictor = official_bundle.predictor("float32")
    return predictor, official_bundle.params, official_bundle.inputs, official_bundle.forcings


@pytest.mark.slow
@pytest.mark.parametrize("chunk_steps", [None, 3])
def test_streamed_predictions_are_the_scans(forecast, chunk_steps):
    predictor, params, inputs, forcings = forecast
    progress = []
    streamed = rollout.predict(
        predictor, params, inputs, forcings, chunk_steps, on_step=lambda *a: progress.append(a)
    )
    # Every step once, in order; the padded tail of the second 3-step chunk is not reported.
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    scanned = jax.jit(rollout.rollout_scan, static_argnums=0)(
        predictor, params, predictor.constants(), inputs, forcings
    )[1]
    assert streamed.keys() == scanned.keys()
    for name, value in scanned.items():
        assert streamed[name].shape == value.shape
        # Two compiled programs of the same steps: float32 rounding apart at most.
        np.testing.assert_allclose(streamed[name], value, rtol=1e-5, atol=1e-5)


def test_a_grid_of_one_chunk_needs_no_choice(forecast):
    predictor, params, inputs, forcings = forecast
    choice, program = rollout.choose_memory_plan(predictor, params, inputs, forcings, budget=1)
    assert choice.plan == MemoryPlan() and choice.how == "given" and program is None
    fixed, _ = rollout.choose_memory_plan(predictor, params, inputs, forcings, grid_chunks=3)
    assert fixed.plan == MemoryPlan(grid_chunks=3)


@pytest.mark.slow
def test_chunks_are_chosen_from_the_compiled_programs(forecast, monkeypatch):
    predictor, params, inputs, forcings = forecast
    monkeypatch.setattr(memory, "CHUNK_NODES", 1024)  # 4,140 grid nodes: whole, or 5 chunks
    choice, _ = rollout.choose_memory_plan(predictor, params, inputs, forcings, budget=1)
    (whole, whole_bytes), (chunked, chunked_bytes) = choice.tried
    assert (whole, chunked) == (MemoryPlan(), MemoryPlan(grid_chunks=5))
    assert chunked_bytes < whole_bytes
    assert choice.plan == chunked and choice.how == "nothing fits"
    roomy, program = rollout.choose_memory_plan(
        predictor, params, inputs, forcings, chunk_steps=3, budget=whole_bytes
    )
    assert roomy.plan == MemoryPlan() and roomy.how == "fits"
    # The chosen program runs as the planner compiled it: two 3-step chunks, the second padded.
    assert isinstance(program.run, jax.stages.Compiled)
    progress = []
    kept = rollout.predict(
        predictor, params, inputs, forcings, 3, on_step=lambda *a: progress.append(a),
        program=program,
    )  # fmt: skip
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    fresh = rollout.predict(predictor, params, inputs, forcings, 3)
    for name, value in fresh.items():
        np.testing.assert_array_equal(kept[name], value)  # one program, compiled once or twice


@pytest.mark.slow
def test_a_kept_program_streams_each_forecast_to_its_own_caller(tiny):
    predictor, params, (inputs, _, forcings) = tiny
    program = rollout.rollout_program(predictor)
    warmer = {n: v + 1.0 for n, v in inputs.items()}
    first = rollout.predict(predictor, params, inputs, forcings, program=program)
    second = rollout.predict(predictor, params, warmer, forcings, program=program)
    # The same compiled program both times, so each forecast equals its own fresh run exactly.
    fresh = rollout.predict(predictor, params, warmer, forcings)
    for name, value in fresh.items():
        np.testing.assert_array_equal(second[name], value)
        assert not np.array_equal(first[name], value), name
