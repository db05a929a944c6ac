"""Real optimiser steps on a tiny random model, and the batch's split over devices."""

from __future__ import annotations

import numpy as np
import pytest

from graphcast_zero import train_loop
from graphcast_zero.config import TASK_13
from graphcast_zero.errors import InputError


@pytest.mark.slow
def test_optimizer_steps_reduce_the_loss(tiny):
    predictor, params, (inputs, targets, forcings) = tiny
    optimizer = train_loop.default_optimizer(learning_rate=3e-3)
    # Through the rematerialised (gradient-checkpointed) rollout, the memory-saving path.
    step = train_loop.make_train_step(predictor, optimizer, remat=True)
    opt_state = optimizer.init(params)
    constants = predictor.constants()
    losses = []
    for _ in range(4):
        params, opt_state, loss, diagnostics = step(
            params, opt_state, constants, inputs, targets, forcings
        )
        losses.append(float(loss))
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert set(diagnostics) == set(TASK_13.target_variables)


def test_batch_size_must_split_over_the_devices():
    with pytest.raises(InputError, match="multiple of the 2 devices"):
        train_loop.check_batch_size(3, 2)
