"""Typed graph network: encode, process (message passing) and decode on one bipartite or mesh graph.

GraphCast runs three of these: ``grid2mesh_gnn`` (encoder), ``mesh_gnn`` (processor) and
``mesh2grid_gnn`` (decoder). Each MLP is ``hidden_layers`` × (linear → swish) then a linear to the
output width, followed by a LayerNorm except in the final decoder. The haiku module names below
(``~_networks_builder``, ``<prefix><set>_mlp/~/linear_<i>``, ``<prefix><set>_layer_norm``) are
part of the published checkpoint format and must not change.

Arrays are one example's, node- or edge-major: ``[num_nodes, channels]``. Batches come from
``hk.vmap`` around the whole step (see ``graphcast``), which also keeps terms that do not depend
on the example (the encoded edges, the mesh nodes' embedding) computed once for the batch.

Besides a whole call, the network exposes its pieces (node and edge encoders, one edge update,
one node update, aggregation, decoder), which ``grid_chunks`` composes to run the grid side in
chunks; message steps can be rematerialised in the backward pass (``remat_group``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from graphcast_zero.model import ordered_grads


@dataclasses.dataclass(frozen=True)
class EdgeSetInputs:
    """One edge set of a graph, as the network consumes it.

    Attributes:
      sender_set: name of the node set the edges leave.
      receiver_set: name of the node set the edges enter.
      senders: [num_edges] int32 indices into the sender node set.
      receivers: [num_edges] int32 indices into the receiver node set.
      features: [num_edges, edge_features] raw edge features.
    """

    sender_set: str
    receiver_set: str
    senders: jax.Array
    receivers: jax.Array
    features: jax.Array


@dataclasses.dataclass(frozen=True)
class Product:
    """One part of a concatenated input, already multiplied by its rows of a Linear's weight.

    Attributes:
      value: [rows, output_size] float32 partial product (no bias).
      width: how many input columns the part had, so the Linear can place the other parts.
    """

    value: jax.Array
    width: int


class Linear(hk.Module):
    """``x @ w + b`` with haiku's ``hk.Linear`` parameters (``w`` [in, out], ``b`` [out]).

    Besides a plain call, it can apply its weight to the concatenation of several inputs without
    building the concatenation: each input meets its own rows of ``w``, optionally after a
    gather. Edge updates use this to project node latents once per node instead of once per edge,
    and to reuse the product of inputs that do not change between forecast steps.
    """

    def __init__(self, output_size: int, name: str):
        super().__init__(name=name)
        self.output_size = output_size

    def _params(self, input_size: int, dtype) -> tuple[jax.Array, jax.Array]:
        init = hk.initializers.TruncatedNormal(stddev=1.0 / np.sqrt(input_size))
        w = hk.get_parameter("w", [input_size, self.output_size], dtype, init=init)
        b = hk.get_parameter("b", [self.output_size], dtype, init=jnp.zeros)
        return w, b

    def __call__(self, x: jax.Array) -> jax.Array:
        w, b = self._params(x.shape[-1], x.dtype)
        return jnp.dot(x, w) + b

    def part_product(self, part: jax.Array, index: int, widths: Sequence[int]) -> Product:
        """``part`` times the rows of ``w`` that input ``index`` of a concatenation meets.

        Args:
          part: [rows, widths[index]].
          index: which input of the concatenation ``part`` is.
          widths: the widths of every input of the concatenation, in order.
        """
        w, _ = self._params(sum(widths), part.dtype)
        start = sum(widths[:index])
        product = jnp.dot(
            part, w[start : start + widths[index]], preferred_element_type=jnp.float32
        )  # [rows, out]
        return Product(product, widths[index])

    def apply_to_concatenation(
        self,
        parts: Sequence[jax.Array | Product],
        gathers: Sequence[Optional[jax.Array]],
    ) -> jax.Array:
        """Equals ``self(concat([p[g] for p, g in zip(parts, gathers)], -1))``.

        Args:
          parts: arrays [rows_i, width_i] sharing a dtype, or their ``Product``s.
          gathers: per part, None (rows used as they are) or [num_out_rows] int indices.

        Returns:
          [num_out_rows, output_size]. Partial products accumulate in float32 so that
          bfloat16 rounding happens once, as in a single matmul.
        """
        dtype = next(p.dtype for p in parts if not isinstance(p, Product))
        widths = [p.width if isinstance(p, Product) else p.shape[-1] for p in parts]
        _, b = self._params(sum(widths), dtype)
        total = None
        for index, (part, gather) in enumerate(zip(parts, gathers, strict=True)):
            if not isinstance(part, Product):
                part = self.part_product(part, index, widths)
            projected = part.value if gather is None else part.value[gather]
            total = projected if total is None else total + projected
        return (total + b.astype(jnp.float32)).astype(dtype)


class MLP(hk.Module):
    """``hidden_layers`` × (linear → swish), then a linear to the output width."""

    def __init__(self, hidden_size: int, hidden_layers: int, output_size: int, name: str):
        super().__init__(name=name)
        sizes = [hidden_size] * hidden_layers + [output_size]
        self.layers = [Linear(size, name=f"linear_{i}") for i, size in enumerate(sizes)]

    def _finish(self, x: jax.Array) -> jax.Array:
        for layer in self.layers[1:]:
            x = layer(jax.nn.swish(x))
        return x

    def __call__(self, x: jax.Array) -> jax.Array:
        return self._finish(self.layers[0](x))

    def apply_to_concatenation(
        self, parts: Sequence[jax.Array], gathers: Sequence[Optional[jax.Array]]
    ) -> jax.Array:
        """The MLP of the (gathered) concatenation of ``parts``; see Linear."""
        return self._finish(self.layers[0].apply_to_concatenation(parts, gathers))


class _Update:
    """An MLP optionally followed by a LayerNorm: one node or edge update function."""

    def __init__(self, mlp: MLP, layer_norm: Optional[hk.LayerNorm]):
        self.mlp = mlp
        self.layer_norm = layer_norm

    def _norm(self, x: jax.Array) -> jax.Array:
        return x if self.layer_norm is None else self.layer_norm(x)

    def __call__(self, parts: Sequence[jax.Array]) -> jax.Array:
        return self._norm(self.mlp(jnp.concatenate(parts, axis=-1)))

    def gathered(self, parts, gathers) -> jax.Array:
        return self._norm(self.mlp.apply_to_concatenation(parts, gathers))


class TypedGraphNetwork(hk.Module):
    """Encode-process-decode on a graph with named node sets and edge sets.

    The edge encoder sees only the graph's structural features, so its output (and, with
    ``gather_first_layer``, that output's share of the first message step's edge MLP) depends on
    the parameters and the graph alone. ``static_edges`` computes those terms; a forecast computes
    them once and passes them to every step.

    Args:
      name: the haiku module name (``grid2mesh_gnn``, ``mesh_gnn`` or ``mesh2grid_gnn``).
      node_sets: node set names, in the order their updates are built.
      edge_sets: edge set names.
      latent_size: width of latents and hidden layers.
      hidden_layers: hidden layers per MLP.
      message_steps: message-passing steps (unshared weights).
      embed_nodes: whether raw node features go through an encoder MLP.
      node_output_sizes: decoder output width per node set (no decoder when empty).
      f32_aggregation: sum incoming messages in float32 (the encoder does, to limit bfloat16 error).
      gather_first_layer: apply the first layer of each edge MLP to node latents per node and
        gather the results, instead of per edge on the concatenation (same maths, less work).
      remat_group: 0 keeps every message step's activations for the backward pass; 1
        recomputes each step there, keeping only the node and edge latents between steps; a
        larger number also recomputes groups of that many steps, keeping the latents only
        between groups (and, while one group's backward pass runs, between its steps).
    """

    def __init__(
        self,
        *,
        name: str,
        node_sets: Sequence[str],
        edge_sets: Sequence[str],
        latent_size: int,
        hidden_layers: int,
        message_steps: int,
        embed_nodes: bool,
        node_output_sizes: Optional[Mapping[str, int]] = None,
        f32_aggregation: bool = False,
        gather_first_layer: bool = False,
        remat_group: int = 0,
    ):
        super().__init__(name=name)
        self.node_sets = tuple(node_sets)
        self.edge_sets = tuple(edge_sets)
        self.latent_size = latent_size
        self.hidden_layers = hidden_layers
        self.message_steps = message_steps
        self.embed_nodes = embed_nodes
        self.node_output_sizes = dict(node_output_sizes or {})
        self.f32_aggregation = f32_aggregation
        self.gather_first_layer = gather_first_layer
        self.remat_group = remat_group
        self._networks: Optional[dict[str, dict[str, _Update]]] = None

    def _networks_builder(self) -> dict[str, dict[str, _Update]]:
        # The method name appears in every parameter path of the published checkpoints.
        def update(name: str, output_size: int, layer_norm: bool = True) -> _Update:
            mlp = MLP(self.latent_size, self.hidden_layers, output_size, name=f"{name}_mlp")
            norm = None
            if layer_norm:
                norm = hk.LayerNorm(
                    axis=-1, create_scale=True, create_offset=True, name=f"{name}_layer_norm"
                )
            return _Update(mlp, norm)

        latent = self.latent_size
        networks: dict[str, dict[str, _Update]] = {
            "encoder_edges": {e: update(f"encoder_edges_{e}", latent) for e in self.edge_sets},
            "encoder_nodes": {},
            "decoder_nodes": {},
        }
        if self.embed_nodes:
            networks["encoder_nodes"] = {
                n: update(f"encoder_nodes_{n}", latent) for n in self.node_sets
            }
        for step in range(self.message_steps):
            networks[f"edges_{step}"] = {
                e: update(f"processor_edges_{step}_{e}", latent) for e in self.edge_sets
            }
            networks[f"nodes_{step}"] = {
                n: update(f"processor_nodes_{step}_{n}", latent) for n in self.node_sets
            }
        for n, size in self.node_output_sizes.items():
            networks["decoder_nodes"][n] = update(f"decoder_nodes_{n}", size, layer_norm=False)
        return networks

    def _built_networks(self) -> dict[str, dict[str, _Update]]:
        # Built once per instance, so static_edges and __call__ share modules within a transform.
        if self._networks is None:
            self._networks = self._networks_builder()
        return self._networks

    def static_edges(
        self, edge_sets: Mapping[str, EdgeSetInputs]
    ) -> dict[str, dict[str, jax.Array]]:
        """The edge terms that depend only on parameters and graph, per edge set.

        Args:
          edge_sets: per edge set, its structure and raw features.

        Returns:
          Per edge set a dict with ``latents`` (the encoded edges, [num_edges, latent]; only
          when a later step needs them) and, with ``gather_first_layer``, ``first_product`` (the
          latents times their rows of the first message step's edge MLP, [num_edges, latent]
          float32).
        """
        networks = self._built_networks()
        widths = [self.latent_size] * 3  # edge, sender and receiver latents
        static = {}
        for name in self.edge_sets:
            latents = self.encode_edges(name, edge_sets[name].features)
            terms = {}
            if not self.gather_first_layer or self.message_steps > 1:
                terms["latents"] = latents
            if self.gather_first_layer and self.message_steps > 0:
                first_linear = networks["edges_0"][name].mlp.layers[0]
                terms["first_product"] = first_linear.part_product(latents, 0, widths).value
            static[name] = terms
        return static

    def encode_nodes(self, node_set: str, features: jax.Array) -> jax.Array:
        """Raw node features → latents, [num_nodes, latent] (``embed_nodes`` networks)."""
        return self._built_networks()["encoder_nodes"][node_set]([features])

    def encode_edges(self, edge_set: str, features: jax.Array) -> jax.Array:
        """Raw edge features → latents, [num_edges, latent]."""
        return self._built_networks()["encoder_edges"][edge_set]([features])

    def decode_nodes(self, node_set: str, latents: jax.Array) -> jax.Array:
        """Final latents → outputs, [num_nodes, output_size] (sets with a decoder)."""
        return self._built_networks()["decoder_nodes"][node_set]([latents])

    def aggregate(self, messages: jax.Array, receivers: jax.Array, num_nodes: int) -> jax.Array:
        """Sums messages per receiver: [num_nodes, latent]; receivers out of range are dropped."""
        dtype = messages.dtype
        if self.f32_aggregation:
            messages = messages.astype(jnp.float32)
        summed = jax.ops.segment_sum(messages, receivers, num_segments=num_nodes)
        return summed.astype(dtype)

    def node_part(self, step: int, edge_set: str, nodes: jax.Array, index: int):
        """Node latents as an edge update of ``step`` consumes them for one end of its edges.

        With ``gather_first_layer`` this is the latents' product with their rows of the edge
        MLP's first weight (``index`` 1: senders, 2: receivers), computed once per node, so that
        a caller can reuse it for several groups of edges; otherwise the latents themselves.
        """
        if not self.gather_first_layer:
            return nodes
        first_linear = self._built_networks()[f"edges_{step}"][edge_set].mlp.layers[0]
        return first_linear.part_product(nodes, index, [self.latent_size] * 3)

    def edge_update(
        self, step: int, edge_set: str, edge_part, sender_part, receiver_part, senders, receivers
    ) -> jax.Array:
        """The new latents of one edge set's edges, [num_edges, latent] (no residual).

        Args:
          step: the message step.
          edge_set: the edge set's name.
          edge_part: the edges' latents [num_edges, latent], or (``gather_first_layer``) their
            ``Product``.
          sender_part, receiver_part: the end nodes' latents, or their ``node_part``s.
          senders, receivers: [num_edges] indices into ``sender_part`` and ``receiver_part``.
        """
        network = self._built_networks()[f"edges_{step}"][edge_set]
        if self.gather_first_layer:
            return network.gathered(
                [edge_part, sender_part, receiver_part], [None, senders, receivers]
            )
        return network([edge_part, sender_part[senders], receiver_part[receivers]])

    def node_update(self, step: int, node_set: str, parts: Sequence[jax.Array]) -> jax.Array:
        """A node set's update of ``step`` from its latents and received sums (no residual)."""
        return self._built_networks()[f"nodes_{step}"][node_set](parts)

    def _message_step(self, step, nodes, edges, structure, static):
        new_edges = {}
        for name, edge_set in structure.items():
            edge_part = edges[name]
            if self.gather_first_layer and step == 0:
                edge_part = Product(static[name]["first_product"], self.latent_size)
            new_edges[name] = self.edge_update(
                step,
                name,
                edge_part,
                nodes[edge_set.sender_set],
                nodes[edge_set.receiver_set],
                edge_set.senders,
                edge_set.receivers,
            )
        new_nodes = {}
        for node_set in self.node_sets:
            received = [
                self.aggregate(new_edges[name], structure[name].receivers, nodes[node_set].shape[0])
                for name in self.edge_sets
                if structure[name].receiver_set == node_set
            ]
            new_nodes[node_set] = self.node_update(step, node_set, [nodes[node_set], *received])
        nodes = {n: nodes[n] + new_nodes[n] for n in self.node_sets}
        if step + 1 < self.message_steps:  # the last step's edge latents are never read
            edges = {e: edges[e] + new_edges[e] for e in self.edge_sets}
        return nodes, edges

    def _edge_latents(self, static) -> dict:
        return {e: static[e].get("latents") for e in self.edge_sets}

    def _group(self, steps, nodes, edges, structure, static):
        if static is None:
            static = self.static_edges(structure)
            edges = self._edge_latents(static)
        return self._steps(steps, nodes, edges, structure, static)

    def _steps(self, steps, nodes, edges, structure, static):
        for step in steps:
            run = functools.partial(self._message_step, step, structure=structure, static=static)
            if self.remat_group:
                run = hk.remat(functools.partial(self._ordered_step, run, step))
            nodes, edges = run(nodes, edges)
        return nodes, edges

    def _ordered_step(self, run, step: int, nodes, edges):
        """``run(nodes, edges)`` with the step's parameter gradients finished before those of
        its inputs leave it in the backward pass (``ordered_grads``)."""
        prefixes = [
            f"{self.module_name}/~_networks_builder/processor_{kind}_{step}_"
            for kind in ("edges", "nodes")
        ]
        return ordered_grads.run_ordered(run, prefixes, nodes, edges)

    def __call__(
        self,
        nodes: Mapping[str, jax.Array],
        edge_sets: Mapping[str, EdgeSetInputs],
        static: Optional[Mapping[str, Mapping[str, jax.Array]]] = None,
    ) -> dict[str, jax.Array]:
        """Runs the network.

        Args:
          nodes: per node set, [num_nodes, features] (raw if ``embed_nodes``, else latent).
          edge_sets: per edge set, its structure and raw features.
          static: ``static_edges(edge_sets)`` computed earlier with the same parameters, or None
            to compute it here.

        Returns:
          Per node set, the decoded outputs [num_nodes, output_size] for sets with a decoder,
          else the latents [num_nodes, latent_size].
        """
        if self.embed_nodes:
            nodes = {n: self.encode_nodes(n, nodes[n]) for n in self.node_sets}
        nodes = dict(nodes)
        # Without given terms, the first group of steps computes them itself (``_group``): with
        # remat groups, the encoded edges' activations are then recomputed in that group's
        # backward pass rather than kept.
        edges = None if static is None else self._edge_latents(static)
        group = self.remat_group
        if group > 1:
            for start in range(0, self.message_steps, group):
                steps = range(start, min(start + group, self.message_steps))
                given = static if start == 0 else {}  # only step 0 reads the terms
                run = functools.partial(self._group, steps, structure=edge_sets, static=given)
                nodes, edges = hk.remat(run)(nodes, edges)
        else:
            nodes, edges = self._group(range(self.message_steps), nodes, edges, edge_sets, static)
        for n in self._built_networks()["decoder_nodes"]:
            nodes[n] = self.decode_nodes(n, nodes[n])
        return nodes
