"""Graphs kept on disk: built once per grid and mesh, loaded by later runs.

Building the three graphs for a 0.25° grid takes seconds of host time (``graph_build_s`` in
``benchmarks/``), about as long as a whole forecast's steps on a fast GPU, while loading them back
takes a small fraction of that. The file name is a hash of everything the graphs depend on (the
grid, the mesh settings and this package's version), so a changed grid, model or package never
reads a stale file.
The model code itself stays free of I/O: this module sits at the edge, beside the workflow, and
:func:`assemble_predictor` puts a predictor together on the cached graphs for every caller.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from graphcast_zero.atomic import atomic_path
from graphcast_zero.config import ModelConfig, TaskConfig
from graphcast_zero.errors import InputError
from graphcast_zero.memory import DEFAULT_PLAN, MemoryPlan
from graphcast_zero.model.graph import EdgeSet, GraphCastGraphs, build_graphs
from graphcast_zero.predictor import Predictor, build_predictor
from graphcast_zero.statistics import Statistics

FORMAT = "graphcast-zero-graphs/1"
EDGE_SETS = ("grid2mesh", "mesh", "mesh2grid")
NODE_FEATURES = ("grid_node_features", "mesh_node_features")


def cache_key(model_config: ModelConfig, lat_deg: np.ndarray, lon_deg: np.ndarray) -> str:
    """A short hash of the graph-shaping settings, the exact coordinates and the package version."""
    try:
        version = importlib.metadata.version("graphcast-zero")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    digest = hashlib.sha256()
    settings = (
        FORMAT,
        version,
        model_config.mesh_size,
        model_config.radius_query_fraction_edge_length,
        model_config.mesh2grid_edge_normalization_factor,
    )
    digest.update(repr(settings).encode())
    for coordinates in (lat_deg, lon_deg):
        digest.update(np.ascontiguousarray(coordinates, dtype=np.float64).tobytes())
    return digest.hexdigest()[:20]


def _to_arrays(graphs: GraphCastGraphs) -> dict[str, np.ndarray]:
    arrays = {name: getattr(graphs, name) for name in NODE_FEATURES}
    for name in EDGE_SETS:
        for field in dataclasses.fields(EdgeSet):
            arrays[f"{name}.{field.name}"] = getattr(getattr(graphs, name), field.name)
    return arrays


def _from_arrays(arrays) -> GraphCastGraphs:
    edge_sets = {
        name: EdgeSet(**{f.name: arrays[f"{name}.{f.name}"] for f in dataclasses.fields(EdgeSet)})
        for name in EDGE_SETS
    }
    return GraphCastGraphs(**{name: arrays[name] for name in NODE_FEATURES}, **edge_sets)


def load_or_build_graphs(
    folder: Path, model_config: ModelConfig, lat_deg: np.ndarray, lon_deg: np.ndarray
) -> tuple[GraphCastGraphs, bool]:
    """The graphs for this grid and model: from ``folder`` when there, else built and saved.

    A cache file that cannot be read (truncated, from an interrupted copy) is rebuilt and
    replaced; a folder that cannot be written only means the graphs are not kept.

    Args:
      folder: the cache folder, e.g. ``<data>/cache/graphs``.
      model_config: uses the mesh settings.
      lat_deg, lon_deg: the grid, as given to ``build_graphs``.

    Returns:
      (graphs, whether they came from the cache).
    """
    lat_deg, lon_deg = np.asarray(lat_deg), np.asarray(lon_deg)
    key = cache_key(model_config, lat_deg, lon_deg)
    path = (
        Path(folder)
        / f"graphs-mesh{model_config.mesh_size}-{lat_deg.size}x{lon_deg.size}-{key}.npz"
    )
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return _from_arrays({name: stored[name] for name in stored.files}), True
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            pass  # unreadable: build again below and replace it
    graphs = build_graphs(model_config, lat_deg, lon_deg)
    try:
        with atomic_path(path) as temporary:
            np.savez(temporary, **_to_arrays(graphs))
    except (OSError, InputError):
        pass  # a read-only data folder costs the next run a rebuild, nothing else
    return graphs, False


def assemble_predictor(
    model_config: ModelConfig,
    task_config: TaskConfig,
    statistics: Statistics,
    lat_deg: np.ndarray,
    lon_deg: np.ndarray,
    *,
    precision: str = "bfloat16",
    graphs_folder: Optional[Path] = None,
    reuse_edge_terms: Optional[bool] = None,
    memory: MemoryPlan = DEFAULT_PLAN,
) -> tuple[Predictor, bool]:
    """The predictor for a grid, on graphs kept in ``graphs_folder`` (loaded, or built and saved).

    The one place where the workflow, the notebook and the benchmarks put a model together.

    Args:
      model_config, task_config: usually from the checkpoint.
      statistics: the three statistics datasets.
      lat_deg, lon_deg: the grid in degrees.
      precision: as for :func:`~graphcast_zero.predictor.build_predictor`.
      graphs_folder: the graph cache, e.g. ``<data>/cache/graphs``; None builds the graphs
        without keeping them (as a benchmark of the build needs).
      reuse_edge_terms, memory: as for :func:`~graphcast_zero.predictor.build_predictor`.

    Returns:
      (predictor, whether its graphs came from the cache).
    """
    graphs, from_cache = None, False
    if graphs_folder is not None:
        graphs, from_cache = load_or_build_graphs(graphs_folder, model_config, lat_deg, lon_deg)
    predictor = build_predictor(
        model_config,
        task_config,
        statistics,
        lat_deg,
        lon_deg,
        precision=precision,
        graphs=graphs,
        reuse_edge_terms=reuse_edge_terms,
        memory=memory,
    )
    return predictor, from_cache
