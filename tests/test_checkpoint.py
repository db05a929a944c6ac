"""Checkpoint format: the published .npz layout, read and written without pickle."""

from __future__ import annotations

import dataclasses
import io
import zipfile

import numpy as np
import pytest

from graphcast_zero import checkpoint as ckpt
from graphcast_zero.config import MODEL_SMALL, TASK_13_PRECIP_OUT
from graphcast_zero.errors import CheckpointError

from .conftest import OFFICIAL


@pytest.fixture(scope="module")
def official():
    return ckpt.load_checkpoint(OFFICIAL / "params" / "random_small.npz")


def test_loads_official_configs(official):
    assert official.model_config.mesh_size == 3
    assert official.model_config.latent_size == 32
    assert official.model_config.gnn_msg_steps == 4
    assert official.model_config.hidden_layers == 1
    assert official.model_config.radius_query_fraction_edge_length == 0.6
    assert official.model_config.mesh2grid_edge_normalization_factor is None
    assert official.model_config.resolution == 0.0
    assert official.task_config.pressure_levels[0] == 50
    assert len(official.task_config.pressure_levels) == 13
    assert official.task_config.input_duration == "12h"
    assert official.task_config.input_variables[0] == "2m_temperature"
    assert "Random" in official.description


def test_parameter_count_matches_reference(official):
    count = sum(a.size for leaves in official.params.values() for a in leaves.values())
    assert count == 70_739


def test_round_trip_writes_the_official_keys_dtypes_and_shapes(official, tmp_path):
    path = ckpt.save_checkpoint(official, tmp_path / "copy.npz")
    with np.load(OFFICIAL / "params" / "random_small.npz") as original, np.load(path) as copy:
        assert set(original.files) == set(copy.files)
        for key in original.files:
            assert copy[key].shape == original[key].shape, key
            if key != "model_config:resolution":  # official checkpoints store a float here
                assert copy[key].dtype == original[key].dtype, key
            np.testing.assert_array_equal(copy[key], original[key])
    reloaded = ckpt.load_checkpoint(path)
    assert reloaded.model_config == official.model_config
    assert reloaded.task_config == official.task_config
    assert reloaded.params.keys() == official.params.keys()


def test_round_trip_in_memory_keeps_optional_field_and_tuples():
    model = dataclasses.replace(MODEL_SMALL, mesh2grid_edge_normalization_factor=0.618)
    original = ckpt.Checkpoint(
        params={"mesh_gnn/~/linear_0": {"w": np.ones((2, 3), np.float32)}},
        model_config=model,
        task_config=TASK_13_PRECIP_OUT,
        description="d",
        license="l",
    )
    buffer = io.BytesIO()
    ckpt.write_checkpoint(original, buffer)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as archive:
        flat = {k: archive[k] for k in archive.files}
    assert flat["model_config:mesh2grid_edge_normalization_factor"] == np.float64(0.618)
    assert flat["task_config:pressure_levels:12"].dtype == np.int64
    restored = ckpt.checkpoint_from_flat_dict(flat)
    assert restored.model_config == model
    assert restored.task_config == TASK_13_PRECIP_OUT
    np.testing.assert_array_equal(restored.params["mesh_gnn/~/linear_0"]["w"], np.ones((2, 3)))


def test_missing_optional_field_becomes_none(official):
    flat = ckpt.checkpoint_to_flat_dict(official)
    assert "model_config:mesh2grid_edge_normalization_factor" not in flat
    assert (
        ckpt.checkpoint_from_flat_dict(flat).model_config.mesh2grid_edge_normalization_factor
        is None
    )


def test_truncated_file_is_a_clear_error(tmp_path):
    data = (OFFICIAL / "params" / "random_small.npz").read_bytes()
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.npz.*fetch"):
        ckpt.load_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(CheckpointError, match="other.npz: not a GraphCast checkpoint"):
        ckpt.load_checkpoint(path)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="text.npz"):
        ckpt.load_checkpoint(text)


def test_missing_config_key_is_named(official, tmp_path):
    flat = ckpt.checkpoint_to_flat_dict(official)
    del flat["model_config:latent_size"]
    path = tmp_path / "partial.npz"
    np.savez(path, **flat)
    with pytest.raises(CheckpointError, match="partial.npz: missing key model_config:latent_size"):
        ckpt.load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        ckpt.load_checkpoint(tmp_path / "absent.npz")


def test_pickled_object_arrays_are_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, **{"params:a:w": np.array([object()], dtype=object)})
    assert zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError, match="pickled.npz"):
        ckpt.load_checkpoint(path)


def test_save_is_atomic_on_failure(official, tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ckpt, "write_checkpoint", explode)
    with pytest.raises(RuntimeError):
        ckpt.save_checkpoint(official, tmp_path / "out.npz")
    assert list(tmp_path.iterdir()) == []
