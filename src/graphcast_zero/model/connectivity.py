"""Which grid points and mesh vertices exchange messages.

Grid→mesh: every mesh vertex within a straight-line radius of a grid point (a KD-tree ball query).
Mesh→grid: the three vertices of the finest-mesh face containing each grid point. The official
code defines "containing" as the flat triangle closest to the point (trimesh's closest point).
Because the mesh is convex and every grid point lies outside it, that face is the one onto which
the point projects orthogonally, from outside its plane: a test of 4 planes per candidate face,
vectorised here.

The positions used for these decisions are rounded as the official code rounds them (float32 grid
positions, float32 mesh vertices) so that boundary cases fall the same way. A grid point on (or
within rounding of) a shared mesh edge is equally close to two faces; the official choice there
comes from trimesh's tie rule and its rounding, which independent code cannot reproduce bit for
bit, so those few points (about 0.1-3 % of a regular grid, mostly symmetric ones) are handed to
trimesh itself.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from graphcast_zero.model.mesh import TriangularMesh

# A point whose projection falls closer than this to an edge of its face (unit sphere; a mesh-6
# edge is 0.019) may be at a tie and goes to trimesh. Further inside, the face is closer than any
# other by about this distance squared (1e-14, against trimesh's rounding of ~1e-20), and
# trimesh's tie rule (near-equal distances go to the face whose normal best faces the point) picks
# it too, since the point lies straight above it. Our float64 plane tests are good to ~1e-16.
_EDGE_MARGIN = 1e-7
_CHUNK = 1 << 16  # grid points per vectorised batch, to bound memory at 0.25°


def unit_vectors(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """Unit vectors of points given in degrees, computed in float32 as the official code does.

    The official code turns float32 degrees into float32 radians and takes float32 sines and
    cosines; its connectivity decisions and edge features inherit that rounding, so we round
    the same way here (and do everything after this in float64).

    Args:
      lat_deg: [...] latitudes in degrees.
      lon_deg: [...] longitudes in degrees, same shape.

    Returns:
      [..., 3] float32.
    """
    colatitude = np.deg2rad(np.float32(90) - np.asarray(lat_deg, dtype=np.float32))
    longitude = np.deg2rad(np.asarray(lon_deg, dtype=np.float32))
    sin_colat = np.sin(colatitude)
    return np.stack(
        [np.cos(longitude) * sin_colat, np.sin(longitude) * sin_colat, np.cos(colatitude)],
        axis=-1,
    )


def grid_unit_vectors(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """Float32 unit vectors of a lat/lon grid: [n_lat], [n_lon] → [n_lat * n_lon, 3].

    Grid node index = lat_index * n_lon + lon_index.
    """
    lat, lon = np.meshgrid(lat_deg, lon_deg, indexing="ij")
    return unit_vectors(lat, lon).reshape(-1, 3)


def radius_query_edges(
    grid_positions: np.ndarray, mesh_vertices: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Grid→mesh pairs closer than `radius` (straight line, inclusive).

    Args:
      grid_positions: [num_grid, 3] unit vectors.
      mesh_vertices: [num_mesh, 3] unit vectors.
      radius: the query radius on the unit sphere.

    Returns:
      grid_indices, mesh_indices: each [num_edges] int32, sorted by grid then mesh index.
    """
    grid_tree = cKDTree(np.asarray(grid_positions, dtype=np.float64))
    mesh_tree = cKDTree(np.asarray(mesh_vertices, dtype=np.float64))
    # One sparse query between the two trees yields all pairs at once, with no per-point lists.
    pairs = grid_tree.sparse_distance_matrix(mesh_tree, float(radius), output_type="ndarray")
    order = np.lexsort((pairs["j"], pairs["i"]))
    return pairs["i"][order].astype(np.int32), pairs["j"][order].astype(np.int32)


def _vertex_faces(mesh: TriangularMesh) -> np.ndarray:
    """[num_vertices, max_valence] faces around each vertex, padded with -1."""
    vertex_of_corner = mesh.faces.reshape(-1)
    order = np.argsort(vertex_of_corner, kind="stable")
    counts = np.bincount(vertex_of_corner, minlength=mesh.num_vertices)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sorted_vertex = vertex_of_corner[order]
    slot = np.arange(order.size) - starts[sorted_vertex]
    table = np.full((mesh.num_vertices, counts.max()), -1, dtype=np.int64)
    table[sorted_vertex, slot] = order // 3
    return table


def _face_planes(mesh: TriangularMesh) -> np.ndarray:
    """Four oriented planes per face, as [unit normal, offset] rows for homogeneous points.

    Row 0 is the face plane (positive outside the mesh); rows 1-3 stand on the edges ab, bc, ca,
    perpendicular to the face, positive towards the face's interior. A point projects into the
    face iff rows 1-3 are all positive.

    Args:
      mesh: a mesh with counter-clockwise faces.

    Returns:
      [num_faces, 4, 4] float64.
    """
    corners = mesh.vertices.astype(np.float64)[mesh.faces]  # [num_faces, 3, 3]
    edges = np.roll(corners, -1, axis=1) - corners  # [num_faces, 3, 3]: ab, bc, ca
    normal = _unit(np.cross(edges[:, 0], -edges[:, 2]))  # [num_faces, 3]
    inward = _unit(np.cross(normal[:, None, :], edges))  # [num_faces, 3, 3]
    normals = np.concatenate([normal[:, None, :], inward], axis=1)  # [num_faces, 4, 3]
    # Each plane passes through a corner: the face plane through a, edge planes through their start.
    on_plane = np.concatenate([corners[:, :1], corners], axis=1)  # [num_faces, 4, 3]
    offsets = -np.einsum("fpd,fpd->fp", normals, on_plane)  # [num_faces, 4]
    return np.concatenate([normals, offsets[..., None]], axis=-1)


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def closest_faces(grid_positions: np.ndarray, mesh: TriangularMesh) -> np.ndarray:
    """Index of the finest-mesh face each grid point falls in (its closest flat triangle).

    Only the faces around the point's nearest vertex are tested: on a near-equilateral mesh they
    include the answer. Points with no clear answer among them (near-ties, or if that ever failed)
    get trimesh's answer, so the result never rests on that shortcut.

    Args:
      grid_positions: [num_grid, 3] unit vectors, rounded as the official code (float32).
      mesh: the finest mesh.

    Returns:
      [num_grid] int64 face indices.
    """
    points = np.asarray(grid_positions, dtype=np.float64)
    _, nearest = cKDTree(mesh.vertices.astype(np.float64)).query(points, workers=-1)  # [num_grid]
    candidates = _vertex_faces(mesh)[nearest]  # [num_grid, max_valence], -1 padded
    planes = _face_planes(mesh)
    homogeneous = np.concatenate([points, np.ones_like(points[:, :1])], axis=1)  # [num_grid, 4]
    faces = np.full(points.shape[0], -1, dtype=np.int64)
    for start in range(0, points.shape[0], _CHUNK):
        part = slice(start, start + _CHUNK)
        # [chunk, max_valence, 4] signed distances to each candidate's 4 planes.
        signed = np.matmul(planes[candidates[part]], homogeneous[part, None, :, None])[..., 0]
        clear = (signed[..., 0] > 0) & (signed[..., 1:] > _EDGE_MARGIN).all(axis=-1)
        clear &= candidates[part] >= 0  # [chunk, max_valence]; at most one per point
        faces[part] = np.where(
            clear.any(axis=1), candidates[part][np.arange(clear.shape[0]), clear.argmax(1)], -1
        )
    unsure = faces < 0
    if unsure.any():
        faces[unsure] = _trimesh_closest_faces(grid_positions[unsure], mesh)
    return faces


def _trimesh_closest_faces(points: np.ndarray, mesh: TriangularMesh) -> np.ndarray:
    """The official query (trimesh's closest point) for grid points at a near-tie."""
    import trimesh  # slow to import, so only when ties occur

    surface = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces)
    _, _, face_indices = trimesh.proximity.closest_point(surface, points)
    return np.asarray(face_indices, dtype=np.int64)


def mesh2grid_edges(
    grid_positions: np.ndarray, mesh: TriangularMesh
) -> tuple[np.ndarray, np.ndarray]:
    """Mesh→grid pairs: the 3 vertices of each grid point's face.

    Args:
      grid_positions: [num_grid, 3] unit vectors (float32 as the official code).
      mesh: the finest mesh.

    Returns:
      mesh_indices, grid_indices: each [3 * num_grid] int32, grid-major, face corner order.
    """
    faces = closest_faces(grid_positions, mesh)
    mesh_indices = mesh.faces[faces].reshape(-1).astype(np.int32)
    grid_indices = np.repeat(np.arange(faces.shape[0], dtype=np.int32), 3)
    return mesh_indices, grid_indices
