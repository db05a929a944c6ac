"""The on-disk graph cache: built once, read back equal, keyed by grid and mesh, self-repairing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from graphcast_zero.config import PUBLISHED_MODELS
from graphcast_zero.graph_cache import load_or_build_graphs
from graphcast_zero.model.graph import build_graphs

MODEL = dataclasses.replace(PUBLISHED_MODELS["small"].model_config, mesh_size=2, resolution=10.0)
LAT = np.linspace(-90, 90, 19)
LON = np.arange(36) * 10.0


def assert_same_graphs(a, b):
    np.testing.assert_array_equal(a.grid_node_features, b.grid_node_features)
    np.testing.assert_array_equal(a.mesh_node_features, b.mesh_node_features)
    for name in ("grid2mesh", "mesh", "mesh2grid"):
        for field in ("senders", "receivers", "features"):
            x, y = getattr(getattr(a, name), field), getattr(getattr(b, name), field)
            assert x.dtype == y.dtype, (name, field)
            np.testing.assert_array_equal(x, y)


def test_first_call_builds_and_saves_second_reads_the_same_graphs(tmp_path):
    built, cached = load_or_build_graphs(tmp_path, MODEL, LAT, LON)
    assert not cached
    assert len(list(tmp_path.glob("graphs-mesh2-19x36-*.npz"))) == 1
    loaded, cached = load_or_build_graphs(tmp_path, MODEL, LAT, LON)
    assert cached
    assert_same_graphs(loaded, built)
    assert_same_graphs(loaded, build_graphs(MODEL, LAT, LON))


@pytest.mark.parametrize(
    "model, lat",
    [
        (dataclasses.replace(MODEL, mesh_size=1), LAT),
        (dataclasses.replace(MODEL, radius_query_fraction_edge_length=0.5), LAT),
        (dataclasses.replace(MODEL, mesh2grid_edge_normalization_factor=0.6), LAT),
        (MODEL, LAT[::-1]),
    ],
    ids=["mesh size", "radius", "mesh2grid normalisation", "latitude order"],
)
def test_anything_the_graphs_depend_on_gets_its_own_file(tmp_path, model, lat):
    load_or_build_graphs(tmp_path, MODEL, LAT, LON)
    graphs, cached = load_or_build_graphs(tmp_path, model, lat, LON)
    assert not cached
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert_same_graphs(graphs, build_graphs(model, lat, LON))


def test_a_truncated_cache_file_is_rebuilt_and_replaced(tmp_path):
    load_or_build_graphs(tmp_path, MODEL, LAT, LON)
    (path,) = tmp_path.glob("*.npz")
    path.write_bytes(path.read_bytes()[:1000])
    graphs, cached = load_or_build_graphs(tmp_path, MODEL, LAT, LON)
    assert not cached
    assert_same_graphs(graphs, build_graphs(MODEL, LAT, LON))
    assert load_or_build_graphs(tmp_path, MODEL, LAT, LON)[1]  # the replacement reads back
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left


def test_an_unwritable_folder_only_means_no_cache(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("")  # a file where the cache folder should be: no folder can be made
    graphs, cached = load_or_build_graphs(blocker / "graphs", MODEL, LAT, LON)
    assert not cached
    assert_same_graphs(graphs, build_graphs(MODEL, LAT, LON))
