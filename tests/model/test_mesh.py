"""Tests for the icosahedral multi-mesh: hand-checkable geometry plus bitwise parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graphcast_zero.model import mesh

GRAPH_SMALL = Path(__file__).resolve().parents[1] / "data/official-small/reference/graph_small.npz"


@pytest.fixture(scope="module")
def hierarchy():
    return mesh.mesh_hierarchy(3)


def test_vertex_and_face_counts(hierarchy):
    assert [m.num_vertices for m in hierarchy] == [12, 42, 162, 642]
    assert [m.faces.shape[0] for m in hierarchy] == [20, 80, 320, 1280]
    for m in hierarchy:
        assert m.vertices.dtype == np.float32 and m.faces.dtype == np.int32


def test_vertices_on_unit_sphere(hierarchy):
    for m in hierarchy:
        np.testing.assert_allclose(np.linalg.norm(m.vertices, axis=1), 1.0, atol=1e-6)


def test_refinement_keeps_coarser_vertices_first(hierarchy):
    for coarse, fine in zip(hierarchy[:-1], hierarchy[1:], strict=True):
        np.testing.assert_array_equal(fine.vertices[: coarse.num_vertices], coarse.vertices)


def test_icosahedron_is_regular_with_a_face_on_top():
    ico = mesh.icosahedron()
    senders, receivers = mesh.faces_to_edges(ico.faces)
    lengths = np.linalg.norm(ico.vertices[senders] - ico.vertices[receivers], axis=1)
    # Edge of the icosahedron inscribed in the unit sphere: 1 / sin(2π/5).
    np.testing.assert_allclose(lengths, 1 / np.sin(2 * np.pi / 5), rtol=1e-6)
    # The rotation lays a face flat: three vertices share the top height, none sits at a pole.
    heights = np.sort(ico.vertices[:, 2])
    np.testing.assert_allclose(heights[-3:], heights[-1], atol=1e-6)
    assert heights[-1] < 0.8


def test_faces_are_counter_clockwise_from_outside_and_mesh_is_closed(hierarchy):
    for m in hierarchy:
        a, b, c = (m.vertices[m.faces[:, k]].astype(np.float64) for k in range(3))
        assert np.all(np.einsum("nd,nd->n", np.cross(b - a, c - a), a + b + c) > 0)
        senders, receivers = mesh.faces_to_edges(m.faces)
        directed = set(zip(senders.tolist(), receivers.tolist(), strict=True))
        assert len(directed) == senders.size  # each directed edge once
        assert directed == set(
            zip(receivers.tolist(), senders.tolist(), strict=True)
        )  # and its reverse
        assert m.num_vertices - senders.size // 2 + m.faces.shape[0] == 2  # Euler: V - E + F


def test_refine_orders_midpoints_by_first_meeting():
    # Two faces sharing edge 0-2: midpoints 01, 12, 20 (face 0), then 23, 30 (face 1; 02 is known).
    corners = np.eye(3, dtype=np.float32)
    square = mesh.TriangularMesh(
        vertices=np.concatenate([corners, -corners[1:2]]),
        faces=np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int32),
    )
    refined = mesh.refine(square)
    expected_pairs = [(0, 1), (1, 2), (2, 0), (2, 3), (3, 0)]
    for index, (i, j) in enumerate(expected_pairs, start=4):
        midpoint = square.vertices[i] + square.vertices[j]
        np.testing.assert_allclose(refined.vertices[index], midpoint / np.linalg.norm(midpoint))
    np.testing.assert_array_equal(refined.faces[:4], [[0, 4, 6], [4, 1, 5], [6, 5, 2], [4, 5, 6]])
    np.testing.assert_array_equal(refined.faces[4:], [[0, 6, 8], [6, 2, 7], [8, 7, 3], [6, 7, 8]])


def test_multi_mesh_edges_cover_every_level(hierarchy):
    senders, receivers = mesh.multi_mesh_edges(hierarchy)
    # 3 directed edges per face, 20 * (1 + 4 + 16 + 64) faces.
    assert senders.size == receivers.size == 3 * 20 * 85 == 5100
    pairs = set(zip(senders.tolist(), receivers.tolist(), strict=True))
    assert len(pairs) == 5100  # no level repeats an edge
    assert senders.max() < hierarchy[-1].num_vertices


def test_negative_mesh_size_is_rejected():
    with pytest.raises(ValueError, match="mesh_size"):
        mesh.mesh_hierarchy(-1)


@pytest.mark.reference
def test_matches_official_mesh(hierarchy):
    official = np.load(GRAPH_SMALL)
    np.testing.assert_array_equal(hierarchy[-1].faces, official["mesh_faces"])  # structure: exact
    # Vertices are float64 arithmetic (the rotation's arcsin, normalisations) rounded to float32;
    # another CPU's float64 transcendentals differ by a few float64 ulps, which can flip that
    # rounding by at most one float32 ulp.
    np.testing.assert_array_max_ulp(hierarchy[-1].vertices, official["mesh_vertices"], maxulp=1)
    # The radius is a float32 product of two float32 numbers, the first from those vertices: one
    # ulp from the vertices and one from each rounding.
    radius = np.float32(mesh.max_edge_length(hierarchy[-1])) * np.float32(0.6)
    np.testing.assert_array_max_ulp(radius, official["query_radius"], maxulp=2)
