"""The grid side of GraphCast in chunks of grid nodes, so only one chunk's activations are live.

At 0.25° the encoder and decoder touch 1,038,240 grid nodes, ~1.6 M grid→mesh and ~3.1 M
mesh→grid edges, each with 512-channel latents: most of a step's memory. Every grid node's work
is independent of the other grid nodes' except through the mesh, so the grid can be cut into
chunks processed one after another in a ``scan``:

- encoder (grid2mesh): a chunk embeds its grid nodes and edges, updates the edges it sends and
  adds their messages to the mesh nodes' sums (float32, across chunks); the mesh nodes are
  updated once, after the last chunk.
- decoder (mesh2grid): a chunk updates the edges it receives from the (finished) mesh, its grid
  nodes and decodes them.

Each chunk is rematerialised in the backward pass, so training keeps only the chunk inputs.
The maths is the unchunked network's; only the order of the float32 sums changes. The mesh
nodes' update in the decoder, whose result nothing reads, is skipped.

Chunks have equal shapes (so the scan compiles once): grid nodes are padded to a multiple of the
chunk size and each chunk's edges to the largest chunk's count. Padding edges point at a node
index one past the end, which ``segment_sum`` drops; gathers clamp it to the last node (JAX's
rule for indices out of range), so padding messages are finite and their zero cotangents keep
the gradients exact.
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from graphcast_zero.model.gnn import TypedGraphNetwork
from graphcast_zero.model.graph import EdgeSet

GRID, MESH = "grid_nodes", "mesh_nodes"


def chunk_nodes(num_grid_nodes: int, num_chunks: int) -> int:
    """Grid nodes per chunk when ``num_grid_nodes`` are cut into ``num_chunks`` (last padded)."""
    return -(-num_grid_nodes // num_chunks)


def chunk_edges(
    edges: EdgeSet, grid_end: str, num_grid_nodes: int, num_chunks: int, num_other: int
) -> dict[str, np.ndarray]:
    """An edge set grouped by the chunk of its grid end, padded to equal chunk sizes.

    Args:
      edges: grid→mesh (``grid_end="senders"``) or mesh→grid (``grid_end="receivers"``) edges.
      grid_end: which end of the edges is a grid node.
      num_grid_nodes: grid nodes in the graph.
      num_chunks: chunks to cut the grid into.
      num_other: mesh nodes (the other end's node count).

    Returns:
      ``senders`` and ``receivers`` [num_chunks, edges_per_chunk] int32 (the grid end as an
      index within its chunk) and ``features`` [num_chunks, edges_per_chunk, 4] float32.
      Padding edges have zero features, the receiver index one past the end (the chunk size for
      grid receivers, ``num_other`` for mesh receivers) and sender 0.
    """
    size = chunk_nodes(num_grid_nodes, num_chunks)
    grid = edges.senders if grid_end == "senders" else edges.receivers
    chunk = grid.astype(np.int64) // size  # [num_edges]
    order = np.argsort(chunk, kind="stable")  # keeps each chunk's edges in their graph order
    counts = np.bincount(chunk, minlength=num_chunks)
    width = max(int(counts.max()), 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(edges.num_edges) - np.repeat(starts, counts)  # position within chunk
    chunk, local = chunk[order], (grid[order] - chunk[order] * size)
    other = (edges.receivers if grid_end == "senders" else edges.senders)[order]

    def placed(values: np.ndarray, fill) -> np.ndarray:
        out = np.full((num_chunks, width) + values.shape[1:], fill, values.dtype)
        out[chunk, slot] = values
        return out

    if grid_end == "senders":
        senders, receivers = placed(local.astype(np.int32), 0), placed(other, num_other)
    else:
        senders, receivers = placed(other, 0), placed(local.astype(np.int32), size)
    features = placed(edges.features[order], 0.0)
    return {"senders": senders, "receivers": receivers, "features": features}


def split_nodes(values: jax.Array, num_chunks: int) -> jax.Array:
    """[num_grid_nodes, ...] → [num_chunks, chunk_nodes, ...], zero-padded at the end."""
    size = chunk_nodes(values.shape[0], num_chunks)
    padding = [(0, size * num_chunks - values.shape[0])] + [(0, 0)] * (values.ndim - 1)
    return jnp.pad(values, padding).reshape((num_chunks, size) + values.shape[1:])


def join_nodes(values: jax.Array, num_grid_nodes: int) -> jax.Array:
    """[num_chunks, chunk_nodes, ...] → [num_grid_nodes, ...], padding removed."""
    return values.reshape((-1,) + values.shape[2:])[:num_grid_nodes]


def encode(
    network: TypedGraphNetwork, grid_nodes: jax.Array, mesh_nodes: jax.Array, edges: dict
) -> tuple[jax.Array, jax.Array]:
    """The grid2mesh network, one chunk of grid nodes at a time (call inside ``hk.transform``).

    Args:
      network: the ``grid2mesh_gnn`` network (one message step, embedded nodes).
      grid_nodes: [num_chunks, chunk_nodes, features] raw grid node features.
      mesh_nodes: [num_mesh_nodes, features] raw mesh node features.
      edges: ``chunk_edges(grid2mesh, "senders", ...)`` as arrays.

    Returns:
      (grid latents [num_chunks, chunk_nodes, latent], mesh latents [num_mesh_nodes, latent]).
    """
    dtype = grid_nodes.dtype
    mesh = network.encode_nodes(MESH, mesh_nodes)  # [num_mesh_nodes, latent]
    num_mesh = mesh.shape[0]
    mesh_part = network.node_part(0, "grid2mesh", mesh, index=2)

    @hk.remat
    def one_chunk(grid_in, senders, receivers, features):
        grid = network.encode_nodes(GRID, grid_in)  # [chunk_nodes, latent]
        edge_latents = network.encode_edges("grid2mesh", features.astype(dtype))
        sender_part = network.node_part(0, "grid2mesh", grid, index=1)
        messages = network.edge_update(
            0, "grid2mesh", edge_latents, sender_part, mesh_part, senders, receivers
        )  # [edges_per_chunk, latent]
        # float32 sums, as the unchunked encoder aggregates (f32_aggregation).
        received = jax.ops.segment_sum(
            messages.astype(jnp.float32), receivers, num_segments=num_mesh
        )  # [num_mesh_nodes, latent]
        grid = grid + network.node_update(0, GRID, [grid])  # grid nodes receive nothing here
        return received, grid

    def step(total, chunk):
        # The sum stays outside the rematerialised part: the backward pass needs no totals.
        received, grid = one_chunk(*chunk)
        return total + received, grid

    zeros = jnp.zeros((num_mesh, network.latent_size), jnp.float32)
    chunks = (grid_nodes, edges["senders"], edges["receivers"], edges["features"])
    total, grid = hk.scan(step, zeros, chunks)
    mesh = mesh + network.node_update(0, MESH, [mesh, total.astype(dtype)])
    return grid, mesh


def decode(
    network: TypedGraphNetwork, grid_latents: jax.Array, mesh_latents: jax.Array, edges: dict
) -> jax.Array:
    """The mesh2grid network and the output decoder, one chunk of grid nodes at a time.

    Args:
      network: the ``mesh2grid_gnn`` network (one message step, a grid node decoder).
      grid_latents: [num_chunks, chunk_nodes, latent] from ``encode``.
      mesh_latents: [num_mesh_nodes, latent] after the processor.
      edges: ``chunk_edges(mesh2grid, "receivers", ...)`` as arrays.

    Returns:
      [num_chunks, chunk_nodes, outputs] decoded grid outputs.
    """
    dtype = grid_latents.dtype
    size = grid_latents.shape[1]
    mesh_part = network.node_part(0, "mesh2grid", mesh_latents, index=1)

    @hk.remat
    def one_chunk(grid, senders, receivers, features):
        edge_latents = network.encode_edges("mesh2grid", features.astype(dtype))
        receiver_part = network.node_part(0, "mesh2grid", grid, index=2)
        messages = network.edge_update(
            0, "mesh2grid", edge_latents, mesh_part, receiver_part, senders, receivers
        )  # [edges_per_chunk, latent]
        received = network.aggregate(messages, receivers, size)  # [chunk_nodes, latent]
        grid = grid + network.node_update(0, GRID, [grid, received])
        return network.decode_nodes(GRID, grid)  # [chunk_nodes, outputs]

    def step(carry, chunk):
        return carry, one_chunk(*chunk)

    chunks = (grid_latents, edges["senders"], edges["receivers"], edges["features"])
    _, outputs = hk.scan(step, None, chunks)
    return outputs
