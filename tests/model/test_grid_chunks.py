"""The grid side in chunks: the edge layout by hand, and the same network outputs as unchunked."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from graphcast_zero.memory import MemoryPlan
from graphcast_zero.model import grid_chunks
from graphcast_zero.model.graph import EdgeSet


def _features(count: int) -> np.ndarray:
    return np.arange(count * 4, dtype=np.float32).reshape(count, 4) + 1  # no zero rows


def test_grid_to_mesh_edges_are_grouped_by_sending_chunk():
    # Grid nodes 0..4 in chunks of 3 (0-2, 3-4 and one padding node); 2 mesh nodes.
    edges = EdgeSet(
        senders=np.array([0, 3, 1, 4, 2], np.int32),
        receivers=np.array([0, 1, 1, 0, 0], np.int32),
        features=_features(5),
    )
    chunked = grid_chunks.chunk_edges(edges, "senders", 5, 2, num_other=2)
    # Chunk 0 holds edges 0, 2, 4 (senders 0, 1, 2); chunk 1 edges 1, 3 and one padding edge.
    np.testing.assert_array_equal(chunked["senders"], [[0, 1, 2], [0, 1, 0]])
    np.testing.assert_array_equal(chunked["receivers"], [[0, 1, 0], [1, 0, 2]])  # 2: dropped
    np.testing.assert_array_equal(chunked["features"][0], edges.features[[0, 2, 4]])
    np.testing.assert_array_equal(chunked["features"][1, :2], edges.features[[1, 3]])
    np.testing.assert_array_equal(chunked["features"][1, 2], 0)


def test_mesh_to_grid_edges_are_grouped_by_receiving_chunk():
    edges = EdgeSet(
        senders=np.array([0, 1, 1, 0], np.int32),
        receivers=np.array([4, 0, 3, 1], np.int32),
        features=_features(4),
    )
    chunked = grid_chunks.chunk_edges(edges, "receivers", 5, 2, num_other=2)
    np.testing.assert_array_equal(chunked["senders"], [[1, 0], [0, 1]])
    np.testing.assert_array_equal(chunked["receivers"], [[0, 1], [1, 0]])  # within the chunk
    np.testing.assert_array_equal(chunked["features"][1], edges.features[[0, 2]])


def test_nodes_split_into_padded_chunks_and_join_back():
    values = jnp.arange(10.0).reshape(5, 2)
    chunks = grid_chunks.split_nodes(values, 2)
    assert chunks.shape == (2, 3, 2)
    np.testing.assert_array_equal(chunks[1, 2], [0, 0])  # the padding node
    np.testing.assert_array_equal(grid_chunks.join_nodes(chunks, 5), values)


@pytest.mark.slow
def test_chunked_step_gives_the_unchunked_outputs(official_bundle):
    # float32; bfloat16 rounds in different places and is held to the official references
    # instead (tests/test_parity.py), as the unchunked path is.
    whole = official_bundle.predictor("float32")
    inputs, _, forcings = official_bundle.extract(steps=1)
    forcings = {n: v[:, :1] for n, v in forcings.items()}

    def outputs(plan):
        predictor = dataclasses.replace(whole, memory=plan)
        step = jax.jit(predictor.normalized_outputs)
        return np.asarray(step(official_bundle.params, predictor.constants(), inputs, forcings))

    reference = outputs(MemoryPlan())
    # 4,140 grid nodes in 7 chunks of 592: the last one padded with 4 nodes.
    chunked = outputs(MemoryPlan(grid_chunks=7))
    # Outputs are normalised (about unit scale); only the order of the encoder's float32 sums
    # differs: float32 rounding noise.
    np.testing.assert_allclose(chunked, reference, atol=1e-5)
