"""The three GraphCast graphs (grid→mesh, multi-mesh, mesh→grid) with their structural features.

Node coordinates are held, as in the official code, as float32 latitude/longitude in degrees (mesh
vertices are converted to lat/lon once, in float32 like the official code), turned into float32
radians and float32 unit vectors at the same points where the official code rounds; rotations,
differences, lengths and normalisation are then done in float64 and the features cast to float32
at the end. Run on the same machine as the official code, this reproduces its features to ~1e-7;
float64 throughout would differ from them by up to ~5e-6, the official rounding noise. Across
machines neither is reproducible that closely: numpy's float32 trigonometry takes CPU-specific SIMD
paths, so mesh coordinates (and with them the features) agree only to a few float32 ulps between
CPUs, for the official code as for this one (``tests/model/test_graph.py`` derives the bounds).

Edge features are ``[|d|, d]`` divided by the longest |d| of the edge set, where d is the sender
minus the receiver position expressed in the receiver's local frame (up, east, north): that is the
official "rotate so the receiver sits at latitude 0, longitude 0" frame, written in closed form.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from graphcast_zero.config import ModelConfig
from graphcast_zero.errors import InputError
from graphcast_zero.model import connectivity, mesh


@dataclasses.dataclass(frozen=True)
class EdgeSet:
    """Directed edges between two node sets.

    Attributes:
      senders: [num_edges] int32 indices into the sender node set.
      receivers: [num_edges] int32 indices into the receiver node set.
      features: [num_edges, 4] float32 ``[|d|, dx, dy, dz]`` normalised as described above.
    """

    senders: np.ndarray
    receivers: np.ndarray
    features: np.ndarray

    @property
    def num_edges(self) -> int:
        return self.senders.shape[0]


@dataclasses.dataclass(frozen=True)
class GraphCastGraphs:
    """Everything structural the network needs for one grid and mesh size.

    Attributes:
      grid_node_features: [num_grid_nodes, 3] float32 ``[sin(lat), cos(lon), sin(lon)]``; grid
        node index = lat_index * n_lon + lon_index.
      mesh_node_features: [num_mesh_nodes, 3] float32, same features for the mesh vertices.
      grid2mesh: senders are grid nodes, receivers mesh nodes.
      mesh: the multi-mesh; senders and receivers are mesh nodes.
      mesh2grid: senders are mesh nodes, receivers grid nodes.
    """

    grid_node_features: np.ndarray
    mesh_node_features: np.ndarray
    grid2mesh: EdgeSet
    mesh: EdgeSet
    mesh2grid: EdgeSet

    @property
    def num_grid_nodes(self) -> int:
        return self.grid_node_features.shape[0]

    @property
    def num_mesh_nodes(self) -> int:
        return self.mesh_node_features.shape[0]


def build_graphs(
    model_config: ModelConfig, lat_deg: np.ndarray, lon_deg: np.ndarray
) -> GraphCastGraphs:
    """Builds the grid→mesh, multi-mesh and mesh→grid graphs for a lat/lon grid.

    Args:
      model_config: uses `mesh_size`, `radius_query_fraction_edge_length` and
        `mesh2grid_edge_normalization_factor`.
      lat_deg: [n_lat] grid latitudes in degrees, in the data's order.
      lon_deg: [n_lon] grid longitudes in degrees, in the data's order.

    Returns:
      The graphs with float32 structural features.

    Raises:
      InputError: if the coordinates are not 1-D finite arrays with latitudes in [-90, 90].
    """
    lat_deg, lon_deg = _checked_coordinates(lat_deg, lon_deg)
    meshes = mesh.mesh_hierarchy(model_config.mesh_size)
    finest = meshes[-1]

    # Connectivity from positions rounded as the official code rounds them (see connectivity).
    grid_positions = connectivity.grid_unit_vectors(lat_deg, lon_deg)
    radius = np.float32(mesh.max_edge_length(finest)) * np.float32(
        model_config.radius_query_fraction_edge_length
    )
    g2m_grid, g2m_mesh = connectivity.radius_query_edges(grid_positions, finest.vertices, radius)
    mesh_senders, mesh_receivers = mesh.multi_mesh_edges(meshes)
    m2g_mesh, m2g_grid = connectivity.mesh2grid_edges(grid_positions, finest)

    grid_lat, grid_lon = np.meshgrid(lat_deg, lon_deg, indexing="ij")
    grid_coords = (grid_lat.reshape(-1), grid_lon.reshape(-1))  # float32 degrees
    mesh_coords = vertex_lat_lon(finest.vertices)
    return GraphCastGraphs(
        grid_node_features=node_features(*grid_coords).astype(np.float32),
        mesh_node_features=node_features(*mesh_coords).astype(np.float32),
        grid2mesh=_edge_set(grid_coords, mesh_coords, g2m_grid, g2m_mesh),
        mesh=_edge_set(mesh_coords, mesh_coords, mesh_senders, mesh_receivers),
        mesh2grid=_edge_set(
            mesh_coords,
            grid_coords,
            m2g_mesh,
            m2g_grid,
            normalization=model_config.mesh2grid_edge_normalization_factor,
        ),
    )


def _checked_coordinates(lat_deg, lon_deg) -> tuple[np.ndarray, np.ndarray]:
    """Returns lat/lon as float32 degrees (the official node coordinates), or raises InputError."""
    lat = np.asarray(lat_deg, dtype=np.float64)
    lon = np.asarray(lon_deg, dtype=np.float64)
    for name, values in (("lat", lat), ("lon", lon)):
        if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
            raise InputError(
                f"grid coordinate '{name}' must be a non-empty 1-D array of finite degrees, "
                f"got shape {values.shape}; pass the dataset's {name} coordinate values."
            )
    if np.abs(lat).max() > 90:
        raise InputError(
            f"grid latitudes must lie in [-90, 90], got up to {np.abs(lat).max()}; "
            "pass latitudes in degrees."
        )
    return lat.astype(np.float32), lon.astype(np.float32)


def vertex_lat_lon(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latitude in [-90, 90] and longitude in [0, 360] of unit vectors, as float32 degrees.

    Computed in float32 from float32 vertices, as the official code does: its mesh node
    coordinates carry that rounding (up to ~3e-5 degrees), which we reproduce bit for bit when
    both run on the same CPU (float32 arccos and arctan2 differ by an ulp or two between CPUs).

    Args:
      vertices: [n, 3] unit vectors.

    Returns:
      lat, lon: each [n] float32.
    """
    xyz = np.asarray(vertices, dtype=np.float32)
    colatitude = np.arccos(np.clip(xyz[:, 2], -1, 1))  # the clip only guards against rounding
    lon = np.mod(np.rad2deg(np.arctan2(xyz[:, 1], xyz[:, 0])), np.float32(360))
    lat = np.float32(90) - np.rad2deg(colatitude)
    return lat.astype(np.float32), lon.astype(np.float32)


def _angles(lat_deg: np.ndarray, lon_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and colatitude in radians, rounded to float32 as the official code rounds them.

    The official features start from float32 radians (an error of up to 2.4e-7 at 2π), which
    moves edge features by up to ~5e-6; we start from the same rounded angles.

    Args:
      lat_deg: [n] latitudes in degrees.
      lon_deg: [n] longitudes in degrees.

    Returns:
      lon, colatitude: each [n] float64 holding float32 values.
    """
    lat = np.asarray(lat_deg, dtype=np.float32)
    lon = np.asarray(lon_deg, dtype=np.float32)
    colatitude = np.deg2rad(np.float32(90) - lat)
    return np.deg2rad(lon).astype(np.float64), colatitude.astype(np.float64)


def node_features(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """Structural node features ``[sin(lat), cos(lon), sin(lon)]``: [n] degrees → [n, 3] float64."""
    lon, colatitude = _angles(lat_deg, lon_deg)
    return np.stack([np.cos(colatitude), np.cos(lon), np.sin(lon)], axis=-1)


def _unit_vectors(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """[n] degrees → [n, 3] float64 unit vectors holding the official float32 positions."""
    return connectivity.unit_vectors(lat_deg, lon_deg).astype(np.float64)


def relative_positions(
    sender_coords: tuple[np.ndarray, np.ndarray],
    receiver_coords: tuple[np.ndarray, np.ndarray],
    senders: np.ndarray,
    receivers: np.ndarray,
) -> np.ndarray:
    """Sender minus receiver position, in each receiver's local (up, east, north) frame.

    This equals rotating both points about z by -lon(receiver) and then about y by lat(receiver),
    which brings the receiver to (1, 0, 0) and keeps directions to the pole pointing north.

    Args:
      sender_coords: (lat, lon) in degrees of the sender node set, each [num_senders].
      receiver_coords: (lat, lon) in degrees of the receiver node set, each [num_receivers].
      senders: [num_edges] indices into the sender node set.
      receivers: [num_edges] indices into the receiver node set.

    Returns:
      [num_edges, 3] float64.
    """
    d = _unit_vectors(*sender_coords)[senders] - _unit_vectors(*receiver_coords)[receivers]
    lon, colatitude = _angles(*receiver_coords)
    # Trigonometry per receiver node, gathered per edge: [num_edges] each.
    cos_lat, sin_lat = np.sin(colatitude)[receivers], np.cos(colatitude)[receivers]
    cos_lon, sin_lon = np.cos(lon)[receivers], np.sin(lon)[receivers]
    towards_meridian = d[:, 0] * cos_lon + d[:, 1] * sin_lon
    up = cos_lat * towards_meridian + sin_lat * d[:, 2]
    east = d[:, 1] * cos_lon - d[:, 0] * sin_lon
    north = cos_lat * d[:, 2] - sin_lat * towards_meridian
    return np.stack([up, east, north], axis=-1)


def _edge_set(
    sender_coords: tuple[np.ndarray, np.ndarray],
    receiver_coords: tuple[np.ndarray, np.ndarray],
    senders: np.ndarray,
    receivers: np.ndarray,
    normalization: Optional[float] = None,
) -> EdgeSet:
    """Edges with features ``[|d|, d] / scale``, scale = `normalization` or the longest |d|."""
    d = relative_positions(sender_coords, receiver_coords, senders, receivers)  # [num_edges, 3]
    length = np.linalg.norm(d, axis=-1, keepdims=True)  # [num_edges, 1]
    if normalization is not None:
        scale = float(normalization)
    else:
        scale = length.max() if length.size else 1.0
    features = np.concatenate([length, d], axis=-1) / scale
    return EdgeSet(
        senders=np.asarray(senders, dtype=np.int32),
        receivers=np.asarray(receivers, dtype=np.int32),
        features=features.astype(np.float32),
    )
