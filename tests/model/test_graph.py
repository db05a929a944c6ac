"""Tests for the GraphCast graphs: structure, features by hand, and parity with the official ones."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from graphcast_zero.config import ModelConfig
from graphcast_zero.errors import InputError
from graphcast_zero.model import graph

# Compares values with reference files made on another machine (the `reference` marker).
pytestmark = pytest.mark.reference

GRAPH_SMALL = Path(__file__).resolve().parents[1] / "data/official-small/reference/graph_small.npz"
CONFIG = ModelConfig(
    resolution=0.0,
    mesh_size=3,
    latent_size=32,
    gnn_msg_steps=4,
    hidden_layers=1,
    radius_query_fraction_edge_length=0.6,
)
LAT = np.arange(-90.0, 91.0, 4.0)  # the fixture grid: 46 x 90, poles included
LON = np.arange(0.0, 360.0, 4.0)


@pytest.fixture(scope="module")
def graphs():
    return graph.build_graphs(CONFIG, LAT, LON)


@pytest.fixture(scope="module")
def official():
    return dict(np.load(GRAPH_SMALL))


# The reference file was made on another CPU. Mesh vertex angles come from numpy's float32 arccos
# and arctan2, whose SIMD paths (AVX2, AVX-512, ...) differ by up to ~2 ulps of their result, so a
# mesh node's longitude may move by 2 ulps of 360° (6.1e-5°) and its latitude by 2 ulps of the
# arccos result plus the rounding of 90° − x (4 ulps of 90°, 3.1e-5°). On the unit sphere a node
# then moves by at most EPSILON, two float32 ulps of 2π radians; grid nodes sit at exact float32
# degrees and move by less (one ulp of 1 in each sine and cosine).
EPSILON = 2 * float(np.spacing(np.float32(2 * np.pi)))  # 9.5e-7
LAT_TOLERANCE = 4 * float(np.spacing(np.float32(90)))  # degrees
LON_TOLERANCE = 2 * float(np.spacing(np.float32(360)))  # degrees


def _longest_edge(official, name: str) -> float:
    """The longest raw edge of a reference edge set, from the reference's own positions."""
    mesh_vertices = official["mesh_vertices"].astype(np.float64)
    grid = graph.connectivity.grid_unit_vectors(LAT, LON).astype(np.float64)
    sending, receiving = {"grid2mesh": (grid, mesh_vertices), "mesh": (mesh_vertices,) * 2,
                          "mesh2grid": (mesh_vertices, grid)}[name]  # fmt: skip
    key = f"{name}.edges.{name}"
    d = sending[official[key + ".senders"]] - receiving[official[key + ".receivers"]]
    return float(np.linalg.norm(d, axis=1).max())


def _sorted_edges(senders, receivers, features):
    order = np.lexsort((receivers, senders))
    return senders[order], receivers[order], features[order]


@pytest.mark.parametrize("name", ["grid2mesh", "mesh", "mesh2grid"])
def test_edges_and_features_match_official(graphs, official, name):
    edges = getattr(graphs, name)
    key = f"{name}.edges.{name}"
    ours = _sorted_edges(edges.senders, edges.receivers, edges.features)
    theirs = _sorted_edges(
        official[key + ".senders"], official[key + ".receivers"], official[key + ".features"]
    )
    np.testing.assert_array_equal(ours[0], theirs[0])  # structure: exact
    np.testing.assert_array_equal(ours[1], theirs[1])
    # Features are d / L (d: sender minus receiver, L: the longest |d|). Each mesh end moves d by
    # up to EPSILON and L by as much, so a feature moves by up to 2·EPSILON/L per mesh end.
    mesh_ends = 2 if name == "mesh" else 1
    tolerance = 2 * mesh_ends * EPSILON / _longest_edge(official, name)
    np.testing.assert_allclose(ours[2], theirs[2], atol=tolerance, rtol=0)


def test_node_features_match_official(graphs, official):
    # sin and cos move by at most the angle's move (EPSILON), plus the final float32 rounding.
    tolerance = EPSILON + float(np.spacing(np.float32(1)))
    np.testing.assert_allclose(
        graphs.grid_node_features, official["grid2mesh.nodes.grid_nodes.features"], atol=tolerance
    )
    np.testing.assert_allclose(
        graphs.mesh_node_features, official["mesh.nodes.mesh_nodes.features"], atol=tolerance
    )


def test_mesh_coordinates_match_official(official):
    lat, lon = graph.vertex_lat_lon(official["mesh_vertices"])
    np.testing.assert_allclose(lat, official["mesh_nodes_lat"], atol=LAT_TOLERANCE, rtol=0)
    # Compared on the circle: a longitude just above 0° on one CPU may be just below 360° on another.
    wrapped = (lon.astype(np.float64) - official["mesh_nodes_lon"] + 180) % 360 - 180
    np.testing.assert_allclose(wrapped, 0, atol=LON_TOLERANCE)


def test_sizes_and_dtypes(graphs):
    assert graphs.num_grid_nodes == 46 * 90 and graphs.num_mesh_nodes == 642
    assert graphs.mesh.num_edges == 5100
    assert graphs.mesh2grid.num_edges == 3 * 46 * 90
    np.testing.assert_array_equal(np.bincount(graphs.mesh2grid.receivers), 3)
    for edges in (graphs.grid2mesh, graphs.mesh, graphs.mesh2grid):
        assert edges.senders.dtype == edges.receivers.dtype == np.int32
        assert edges.features.dtype == np.float32 and edges.features.shape == (edges.num_edges, 4)
    assert graphs.grid2mesh.senders.max() < graphs.num_grid_nodes
    assert graphs.grid2mesh.receivers.max() < graphs.num_mesh_nodes
    assert graphs.mesh2grid.senders.max() < graphs.num_mesh_nodes


def test_grid_node_features_by_hand(graphs):
    index = 10 * 90 + 15  # lat -50, lon 60
    expected = [np.sin(np.deg2rad(-50)), 0.5, np.sqrt(3) / 2]
    np.testing.assert_allclose(graphs.grid_node_features[index], expected, atol=1e-6)


@pytest.mark.parametrize("name", ["grid2mesh", "mesh", "mesh2grid"])
def test_edge_features_are_normalised_by_the_longest_edge(graphs, name):
    features = getattr(graphs, name).features
    assert features[:, 0].max() == pytest.approx(1.0, abs=1e-7)
    np.testing.assert_allclose(features[:, 0], np.linalg.norm(features[:, 1:], axis=1), atol=1e-6)


def test_relative_position_is_in_the_receivers_up_east_north_frame():
    receiver = (np.array([0.0, 30.0]), np.array([0.0, 100.0]))
    sender = (np.array([0.0, 40.0]), np.array([10.0, 100.0]))
    d = graph.relative_positions(sender, receiver, np.array([0, 1]), np.array([0, 1]))
    ten = np.deg2rad(10.0)
    # Due east on the equator, then due north along a meridian: chords of 10° in each case.
    np.testing.assert_allclose(d[0], [np.cos(ten) - 1, np.sin(ten), 0], atol=1e-6)
    np.testing.assert_allclose(d[1], [np.cos(ten) - 1, 0, np.sin(ten)], atol=1e-6)


def test_mesh2grid_normalisation_factor_replaces_the_longest_edge(graphs):
    factor = 0.05
    config = dataclasses.replace(CONFIG, mesh2grid_edge_normalization_factor=factor)
    scaled = graph.build_graphs(config, LAT, LON)
    longest = scaled.mesh2grid.features[:, 0].max() * factor  # the raw longest mesh→grid edge
    np.testing.assert_allclose(
        scaled.mesh2grid.features * factor, graphs.mesh2grid.features * longest, atol=1e-7
    )
    # The other edge sets keep their own normalisation.
    np.testing.assert_array_equal(scaled.grid2mesh.features, graphs.grid2mesh.features)
    np.testing.assert_array_equal(scaled.mesh.features, graphs.mesh.features)


def test_grid2mesh_edges_lie_within_the_query_radius(graphs, official):
    # Features are |d| / max |d|; the longest grid2mesh edge can be at most the radius.
    grid = graph.connectivity.grid_unit_vectors(LAT, LON).astype(np.float64)
    mesh_vertices = official["mesh_vertices"].astype(np.float64)
    edges = graphs.grid2mesh
    lengths = np.linalg.norm(grid[edges.senders] - mesh_vertices[edges.receivers], axis=1)
    assert lengths.max() <= official["query_radius"] + 1e-7
    assert lengths.max() > 0.9 * official["query_radius"]


@pytest.mark.parametrize(
    ("lat", "lon", "match"),
    [
        (np.zeros((2, 2)), LON, "'lat'"),
        (LAT, np.array([]), "'lon'"),
        (np.array([0.0, np.nan]), LON, "'lat'"),
        (np.array([0.0, 95.0]), LON, r"\[-90, 90\]"),
    ],
)
def test_bad_coordinates_raise_input_error(lat, lon, match):
    with pytest.raises(InputError, match=match):
        graph.build_graphs(CONFIG, lat, lon)
