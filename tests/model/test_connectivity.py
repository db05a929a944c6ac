"""Tests for grid→mesh (radius) and mesh→grid (containing face) connectivity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from graphcast_zero.model import connectivity, mesh

GRAPH_SMALL = Path(__file__).resolve().parents[1] / "data/official-small/reference/graph_small.npz"
LAT_6 = np.linspace(-90.0, 90.0, 31)  # 6° grid with poles
LON_6 = np.arange(0.0, 360.0, 6.0)


@pytest.fixture(scope="module")
def mesh2():
    return mesh.mesh_hierarchy(2)[-1]


def test_unit_vectors_by_hand():
    points = connectivity.unit_vectors(np.array([0.0, 0.0, 90.0, -30.0]), np.array([0, 90, 0, 180]))
    expected = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [-np.sqrt(3) / 2, 0, -0.5]]
    np.testing.assert_allclose(points, expected, atol=1e-6)
    assert points.dtype == np.float32


def test_grid_unit_vectors_flatten_lat_major():
    lat, lon = np.array([-45.0, 0.0, 45.0]), np.array([0.0, 90.0, 180.0, 270.0])
    grid = connectivity.grid_unit_vectors(lat, lon)
    assert grid.shape == (12, 3)
    np.testing.assert_array_equal(grid[2 * 4 + 1], connectivity.unit_vectors(45.0, 90.0))


def test_radius_query_finds_exactly_the_points_within_radius(mesh2):
    grid = connectivity.grid_unit_vectors(LAT_6, LON_6)
    radius = 0.6 * mesh.max_edge_length(mesh2)
    grid_index, mesh_index = connectivity.radius_query_edges(grid, mesh2.vertices, radius)
    distances = np.linalg.norm(
        grid.astype(np.float64)[:, None] - mesh2.vertices.astype(np.float64)[None], axis=-1
    )
    expected = set(zip(*np.nonzero(distances <= radius), strict=True))
    assert set(zip(grid_index.tolist(), mesh_index.tolist(), strict=True)) == expected
    assert len(expected) > grid.shape[0]  # not vacuous
    order = np.lexsort((mesh_index, grid_index))
    np.testing.assert_array_equal(order, np.arange(order.size))  # grid-major, sorted
    assert grid_index.dtype == mesh_index.dtype == np.int32


def _inside_spherical_triangle(points, corners, tolerance):
    """[n, 3] points inside [n, 3, 3] counter-clockwise spherical triangles, up to tolerance."""
    inside = np.ones(points.shape[0], dtype=bool)
    for k in range(3):
        plane = np.cross(corners[:, k], corners[:, (k + 1) % 3])
        inside &= np.einsum("nd,nd->n", plane, points) >= -tolerance
    return inside


def test_each_grid_point_gets_the_three_corners_of_a_face_containing_it(mesh2):
    grid = connectivity.grid_unit_vectors(LAT_6, LON_6)
    mesh_index, grid_index = connectivity.mesh2grid_edges(grid, mesh2)
    np.testing.assert_array_equal(grid_index, np.repeat(np.arange(grid.shape[0]), 3))
    corners = mesh_index.reshape(-1, 3)
    faces = {tuple(face) for face in mesh2.faces.tolist()}
    assert all(tuple(corner) in faces for corner in corners.tolist())
    triangle = mesh2.vertices.astype(np.float64)[corners]  # [num_grid, 3, 3]
    # The closest flat face may miss spherical containment, but only very near an edge (~1e-6).
    assert np.all(_inside_spherical_triangle(grid.astype(np.float64), triangle, 1e-5))


def test_faces_match_trimesh_closest_point_everywhere(mesh2):
    # The official definition: the flat triangle closest to the point, ties decided by trimesh.
    grid = connectivity.grid_unit_vectors(LAT_6, LON_6)
    surface = trimesh.Trimesh(vertices=mesh2.vertices, faces=mesh2.faces)
    _, _, official = trimesh.proximity.closest_point(surface, grid)
    np.testing.assert_array_equal(connectivity.closest_faces(grid, mesh2), official)


def test_point_on_a_shared_edge_gets_one_of_its_two_faces(mesh2):
    # The arc midpoint of every edge is equidistant from the two faces along that edge.
    senders, receivers = mesh.faces_to_edges(mesh2.faces)
    midpoints = mesh2.vertices[senders] + mesh2.vertices[receivers]
    midpoints = (midpoints / np.linalg.norm(midpoints, axis=1, keepdims=True)).astype(np.float32)
    faces = connectivity.closest_faces(midpoints, mesh2)
    chosen = mesh2.faces[faces]
    assert np.all((chosen == senders[:, None]).any(1) & (chosen == receivers[:, None]).any(1))
    surface = trimesh.Trimesh(vertices=mesh2.vertices, faces=mesh2.faces)
    np.testing.assert_array_equal(faces, trimesh.proximity.closest_point(surface, midpoints)[2])


@pytest.mark.reference
def test_matches_official_fixture_connectivity():
    official = np.load(GRAPH_SMALL)
    finest = mesh.mesh_hierarchy(3)[-1]
    grid = connectivity.grid_unit_vectors(np.arange(-90.0, 91.0, 4.0), np.arange(0.0, 360.0, 4.0))
    grid_index, mesh_index = connectivity.radius_query_edges(
        grid, finest.vertices, official["query_radius"]
    )
    key = "grid2mesh.edges.grid2mesh"
    ours = set(zip(grid_index.tolist(), mesh_index.tolist(), strict=True))
    senders, receivers = official[key + ".senders"], official[key + ".receivers"]
    assert ours == set(zip(senders.tolist(), receivers.tolist(), strict=True))
    mesh_index, grid_index = connectivity.mesh2grid_edges(grid, finest)
    key = "mesh2grid.edges.mesh2grid"
    np.testing.assert_array_equal(mesh_index, official[key + ".senders"])
    np.testing.assert_array_equal(grid_index, official[key + ".receivers"])
