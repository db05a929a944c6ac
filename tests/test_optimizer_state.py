"""The optimiser state on disk: a round trip, and one-line errors for states that cannot continue."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from graphcast_zero.errors import InputError
from graphcast_zero.optimizer_state import load_optimizer_state, save_optimizer_state
from graphcast_zero.train_loop import default_optimizer

PARAMS = {"layer": {"w": np.ones((3, 2), np.float32), "b": np.zeros(2, np.float32)}}


def state_of(params):
    return default_optimizer(learning_rate=1e-3).init(params)


def stepped_state():
    """A state whose moments are not their initial zeros: one update on gradients of one."""
    optimizer = default_optimizer(learning_rate=1e-3)
    grads = jax.tree.map(np.ones_like, PARAMS)
    return optimizer.update(grads, optimizer.init(PARAMS), PARAMS)[1]


def test_a_saved_state_comes_back_with_its_iterations(tmp_path):
    state = stepped_state()
    path = save_optimizer_state(state, 7, tmp_path / "optimizer_state.npz")
    loaded, iterations = load_optimizer_state(path, state_of(PARAMS))
    assert iterations == 7
    assert jax.tree.structure(loaded) == jax.tree.structure(state)
    for ours, saved in zip(jax.tree.leaves(loaded), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(ours, saved)
    assert not list(tmp_path.glob(".*"))  # written through a temporary name


def other_model_state():
    """The state of a model with one more parameter array."""
    return state_of({**PARAMS, "extra": {"w": np.ones(4, np.float32)}})


def wider_model_state():
    """The state of a model with the same arrays, one of them wider."""
    return state_of({"layer": {"w": np.ones((3, 5), np.float32), "b": np.zeros(2, np.float32)}})


@pytest.mark.parametrize(
    "saved, message",
    [
        (other_model_state, r"holds \d+ arrays but this optimiser and model need \d+"),
        (wider_model_state, r"has shape \(3, 5\) but this model needs \(3, 2\)"),
    ],
    ids=["leaf count", "shape"],
)
def test_a_state_of_another_model_is_refused_in_one_line(tmp_path, saved, message):
    path = save_optimizer_state(saved(), 4, tmp_path / "optimizer_state.npz")
    with pytest.raises(InputError, match=message) as raised:
        load_optimizer_state(path, state_of(PARAMS))
    assert "\n" not in str(raised.value) and "--reset-optimizer" in str(raised.value)
    assert str(path) in str(raised.value)


def test_a_missing_or_truncated_state_is_refused(tmp_path):
    path = tmp_path / "optimizer_state.npz"
    with pytest.raises(InputError, match="no optimizer state .* --reset-optimizer"):
        load_optimizer_state(path, state_of(PARAMS))
    save_optimizer_state(stepped_state(), 1, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError, match="cannot be read .* --reset-optimizer"):
        load_optimizer_state(path, state_of(PARAMS))
