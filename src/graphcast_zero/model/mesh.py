"""The icosahedral multi-mesh: a refined icosahedron on the unit sphere and its edges.

Vertex positions are rounded to float32 at each step exactly where DeepMind's code rounds them
(its mesh is float32), so that our vertices are bit-identical to the official ones on the same CPU
(another CPU's float64 transcendentals may flip a float32 rounding by one ulp): grid-mesh
connectivity decisions at ties (grid points on a mesh edge) then come out the same. Everything
derived from the vertices (lengths, features) is computed in float64.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial import transform

_PHI = (1.0 + np.sqrt(5.0)) / 2.0

# The 12 icosahedron corners are the cyclic permutations of (0, ±1, ±φ), listed in this order:
# for s1 in (+1, -1), for s2 in (+φ, -φ): (s1, s2, 0), (0, s1, s2), (s2, 0, s1).
# Faces are counter-clockwise seen from outside; the layout (and so every vertex and face index
# of the refined meshes) follows the published GraphCast mesh.
_ICOSAHEDRON_FACES = (
    (0, 1, 2), (0, 6, 1), (8, 0, 2), (8, 4, 0), (3, 8, 2),
    (3, 2, 7), (7, 2, 1), (0, 4, 6), (4, 11, 6), (6, 11, 5),
    (1, 5, 7), (4, 10, 11), (4, 8, 10), (10, 8, 3), (10, 3, 9),
    (11, 10, 9), (11, 9, 5), (5, 9, 7), (9, 3, 7), (1, 6, 5),
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class TriangularMesh:
    """A triangulated sphere.

    Attributes:
      vertices: [num_vertices, 3] float32 unit vectors.
      faces: [num_faces, 3] int32 vertex indices, counter-clockwise seen from outside.
    """

    vertices: np.ndarray
    faces: np.ndarray

    @property
    def num_vertices(self) -> int:
        return self.vertices.shape[0]


def icosahedron() -> TriangularMesh:
    """Returns the regular icosahedron inscribed in the unit sphere, in GraphCast's orientation.

    The raw icosahedron has an edge on top, parallel to the y axis; rotating it about y by half of
    (π − dihedral angle) lays one face flat instead, which is the orientation GraphCast uses.
    """
    corners = []
    for s1 in (1.0, -1.0):
        for s2 in (_PHI, -_PHI):
            corners += [(s1, s2, 0.0), (0.0, s1, s2), (s2, 0.0, s1)]
    # Rounded to float32 first, then scaled in float64 and rounded again, as the official code.
    vertices = np.array(corners, dtype=np.float32)  # [12, 3]
    vertices = (vertices / np.float64(np.linalg.norm([1.0, _PHI]))).astype(np.float32)
    dihedral = 2.0 * np.arcsin(_PHI / np.sqrt(3.0))
    rotation = transform.Rotation.from_euler("y", (np.pi - dihedral) / 2.0).as_matrix()
    # Row vectors times the matrix: this applies the inverse rotation, as the published mesh does.
    vertices = np.dot(vertices.astype(np.float64), rotation).astype(np.float32)
    return TriangularMesh(vertices=vertices, faces=np.array(_ICOSAHEDRON_FACES, dtype=np.int32))


def refine(mesh: TriangularMesh) -> TriangularMesh:
    """Splits every face into 4, adding edge midpoints projected onto the sphere.

    New vertices are appended in the order their edge is first met when walking the faces in order
    and, within a face (a, b, c), its edges ab, bc, ca. Face (a, b, c) with midpoints (ab, bc, ca)
    becomes (a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca), keeping the orientation.

    Args:
      mesh: the mesh to refine.

    Returns:
      The refined mesh; its first vertices are those of `mesh`, unchanged.
    """
    faces = mesh.faces
    num_faces = faces.shape[0]
    # [num_faces * 3, 2], face-major: (a, b), (b, c), (c, a) for each face.
    face_edges = np.stack([faces, np.roll(faces, -1, axis=1)], axis=-1).reshape(-1, 2)
    keys = np.sort(face_edges, axis=1)
    unique_keys, first_seen, inverse = np.unique(
        keys, axis=0, return_index=True, return_inverse=True
    )
    # Rank of each distinct edge by first appearance gives its midpoint's new index.
    order = np.argsort(first_seen, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    midpoint_index = (mesh.num_vertices + rank[inverse.reshape(-1)]).reshape(num_faces, 3)

    midpoints = _unit_midpoints(mesh.vertices, unique_keys[order])
    vertices = np.concatenate([mesh.vertices, midpoints], axis=0)

    a, b, c = faces.T
    ab, bc, ca = midpoint_index.T
    children = np.stack(
        [
            np.stack([a, ab, ca], axis=-1),
            np.stack([ab, b, bc], axis=-1),
            np.stack([ca, bc, c], axis=-1),
            np.stack([ab, bc, ca], axis=-1),
        ],
        axis=1,
    )  # [num_faces, 4, 3]: the 4 children of a face stay together, in parent order.
    return TriangularMesh(vertices=vertices, faces=children.reshape(-1, 3).astype(np.int32))


def _unit_midpoints(vertices: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Midpoints of vertex pairs pushed onto the unit sphere, rounded as the official float32 code.

    Args:
      vertices: [num_vertices, 3] float32.
      pairs: [num_pairs, 2] vertex indices.

    Returns:
      [num_pairs, 3] float32 unit vectors.
    """
    mean = (vertices[pairs[:, 0]] + vertices[pairs[:, 1]]) / np.float32(2.0)  # [num_pairs, 3]
    # The official norm is a float32 BLAS dot product: float32 squares summed in float64, the sum
    # rounded to float32, then a float32 square root. Any other order differs in the last bit.
    squared = (mean * mean).astype(np.float64)  # [num_pairs, 3]
    sum_squares = ((squared[:, 0] + squared[:, 1]) + squared[:, 2]).astype(np.float32)
    norm = np.sqrt(sum_squares)  # [num_pairs] float32
    return (mean / norm[:, None]).astype(np.float32)


def mesh_hierarchy(mesh_size: int) -> list[TriangularMesh]:
    """Returns the icosahedron and its successive refinements, `mesh_size + 1` meshes in all."""
    if mesh_size < 0:
        raise ValueError(f"mesh_size must be >= 0, got {mesh_size}")
    meshes = [icosahedron()]
    for _ in range(mesh_size):
        meshes.append(refine(meshes[-1]))
    return meshes


def faces_to_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges of triangles: each face (i, j, k) gives i→j, j→k, k→i.

    On a closed, consistently oriented mesh each undirected edge then appears once per direction.

    Args:
      faces: [num_faces, 3] vertex indices.

    Returns:
      senders, receivers: each [num_faces * 3] int32, all first edges, then all second, then third.
    """
    senders = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]]).astype(np.int32)
    receivers = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]]).astype(np.int32)
    return senders, receivers


def multi_mesh_edges(meshes: list[TriangularMesh]) -> tuple[np.ndarray, np.ndarray]:
    """Edges of the multi-mesh: the finest vertices with the faces of every level.

    Edges shared by two levels (a coarse edge is never a fine edge, so there are none on an
    icosahedral hierarchy) would simply appear twice.

    Args:
      meshes: a hierarchy from `mesh_hierarchy`, coarse to fine.

    Returns:
      senders, receivers: each [3 * total faces] int32 indices into the finest mesh's vertices.
    """
    return faces_to_edges(np.concatenate([mesh.faces for mesh in meshes], axis=0))


def max_edge_length(mesh: TriangularMesh) -> float:
    """Longest straight-line (chord) edge of `mesh`, from its float32 vertices as published."""
    senders, receivers = faces_to_edges(mesh.faces)
    lengths = np.linalg.norm(mesh.vertices[senders] - mesh.vertices[receivers], axis=-1)
    return float(lengths.max())
