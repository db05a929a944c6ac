"""The rollout on a tiny random model: its first step, and buffer donation per platform."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from graphcast_zero import rollout


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
