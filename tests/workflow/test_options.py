"""The tasks' option checks: numbers, precision and the --random architecture."""

from __future__ import annotations

import numpy as np
import pytest

from graphcast_zero.config import TASK_37
from graphcast_zero.errors import InputError
from graphcast_zero.workflow.options import RandomModel, positive_number, precision_option


def test_positive_numbers_come_as_text_or_numbers():
    assert positive_number("1e-3", "--learning-rate") == 1e-3
    assert positive_number(2, "--learning-rate") == 2.0
    for bad in ("fast", "0", -1.0, None):
        with pytest.raises(InputError, match="--learning-rate must be a positive number"):
            positive_number(bad, "--learning-rate")


def test_precision_names_the_option():
    assert precision_option("float32") == "float32"
    with pytest.raises(InputError, match="^--precision must be one of auto, bfloat16, float32"):
        precision_option("half")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"levels": 12}, "--levels must be 13 or 37, not 12"),
        ({"mesh_size": 0}, "--mesh-size must be at least 1, not 0"),
        ({"gnn_msg_steps": -1}, "--gnn-msg-steps must be at least 1, not -1"),
    ],
)
def test_random_architecture_options_are_checked(options, message):
    with pytest.raises(InputError, match=message):
        RandomModel(**options).checkpoint(np.array([-45.0, 45.0]), np.array([0.0, 180.0]))


def test_random_weights_fit_any_grid_and_say_what_they_are():
    model = RandomModel(mesh_size=1, latent_size=4, gnn_msg_steps=1, levels=37, seed=3)
    checkpoint = model.checkpoint(np.linspace(-90, 90, 7), np.arange(12) * 30.0)
    assert checkpoint.model_config == model.model_config()
    assert checkpoint.model_config.resolution == 0.0 and checkpoint.task_config == TASK_37
    assert checkpoint.description.startswith("Random, untrained GraphCast weights (seed 3)")
    encoder = checkpoint.params[
        "grid2mesh_gnn/~_networks_builder/encoder_edges_grid2mesh_mlp/~/linear_0"
    ]
    assert encoder["w"].shape[1] == 4  # the latent size
