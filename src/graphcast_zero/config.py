"""Model and task configurations: frozen dataclasses with the published presets.

The field names are part of the checkpoint format (``model_config:<field>``,
``task_config:<field>``), so they follow DeepMind's published files exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import pandas as pd

PRESSURE_LEVELS_13 = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)
PRESSURE_LEVELS_37 = (
    1, 2, 3, 5, 7, 10, 20, 30, 50, 70, 100, 125, 150, 175, 200, 225, 250, 300, 350, 400, 450,
    500, 550, 600, 650, 700, 750, 775, 800, 825, 850, 875, 900, 925, 950, 975, 1000,
)  # fmt: skip
PRESSURE_LEVELS = {13: PRESSURE_LEVELS_13, 37: PRESSURE_LEVELS_37}
# The model's time step: frames of the datasets and each prediction are 6 hours apart.
STEP = pd.Timedelta(hours=6)

# Standard gravity (m/s²): geopotential = geopotential height × this, as ECMWF defines both.
GRAVITY = 9.80665
PRECIPITATION = "total_precipitation_6hr"
TOA_RADIATION = "toa_incident_solar_radiation"
SURFACE_TARGETS = (
    "2m_temperature",
    "mean_sea_level_pressure",
    "10m_v_component_of_wind",
    "10m_u_component_of_wind",
    PRECIPITATION,
)
# The surface targets that are instantaneous fields (precipitation is a 6-hour accumulation).
SURFACE_FIELDS = tuple(name for name in SURFACE_TARGETS if name != PRECIPITATION)
ATMOSPHERIC_VARIABLES = (
    "temperature",
    "geopotential",
    "u_component_of_wind",
    "v_component_of_wind",
    "vertical_velocity",
    "specific_humidity",
)
PROGRESS_FEATURES = (
    "year_progress_sin",
    "year_progress_cos",
    "day_progress_sin",
    "day_progress_cos",
)
FORCING_VARIABLES = (TOA_RADIATION, *PROGRESS_FEATURES)
STATIC_VARIABLES = ("geopotential_at_surface", "land_sea_mask")
TARGET_VARIABLES = SURFACE_TARGETS + ATMOSPHERIC_VARIABLES
# Variables derived from `datetime` and `lon` rather than read from a dataset.
DERIVED_VARIABLES = PROGRESS_FEATURES


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """What the model reads and predicts.

    Attributes:
      input_variables: variables of the input frames (targets, forcings and statics).
      target_variables: variables predicted at each step.
      forcing_variables: variables known in advance and given at the target times.
      pressure_levels: the levels of the atmospheric variables, in hPa.
      input_duration: the span covered by the input frames, as a pandas timedelta string.
    """

    input_variables: tuple[str, ...]
    target_variables: tuple[str, ...]
    forcing_variables: tuple[str, ...]
    pressure_levels: tuple[int, ...]
    input_duration: str

    @property
    def input_frames(self) -> int:
        """Number of input frames, one ``STEP`` apart (2 for the published 12 h duration)."""
        return int(pd.Timedelta(self.input_duration) / STEP)

    @property
    def precipitation_input(self) -> bool:
        """Whether precipitation is read as an input (ERA5) or only predicted (HRES inputs)."""
        return PRECIPITATION in self.input_variables


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The architecture of one GraphCast model.

    Attributes:
      resolution: grid spacing in degrees the model was trained on (0 accepts any grid).
      mesh_size: number of refinements of the icosahedron; the multi-mesh holds levels 0..mesh_size.
      latent_size: width of every latent node and edge vector.
      gnn_msg_steps: message-passing steps on the multi-mesh.
      hidden_layers: hidden layers in each MLP.
      radius_query_fraction_edge_length: grid→mesh radius as a fraction of the longest finest-mesh
        edge.
      mesh2grid_edge_normalization_factor: if set, divides mesh→grid edge lengths instead of the
        longest such edge.
    """

    resolution: float
    mesh_size: int
    latent_size: int
    gnn_msg_steps: int
    hidden_layers: int
    radius_query_fraction_edge_length: float
    mesh2grid_edge_normalization_factor: Optional[float] = None


def _task(levels: tuple[int, ...], precipitation_input: bool) -> TaskConfig:
    inputs = (
        TARGET_VARIABLES
        if precipitation_input
        else tuple(name for name in TARGET_VARIABLES if name != PRECIPITATION)
    )
    return TaskConfig(
        input_variables=inputs + FORCING_VARIABLES + STATIC_VARIABLES,
        target_variables=TARGET_VARIABLES,
        forcing_variables=FORCING_VARIABLES,
        pressure_levels=levels,
        input_duration="12h",
    )


TASK_37 = _task(PRESSURE_LEVELS_37, precipitation_input=True)
TASK_13 = _task(PRESSURE_LEVELS_13, precipitation_input=True)
TASK_13_PRECIP_OUT = _task(PRESSURE_LEVELS_13, precipitation_input=False)

_PUBLISHED_MODEL = ModelConfig(
    resolution=0.25,
    mesh_size=6,
    latent_size=512,
    gnn_msg_steps=16,
    hidden_layers=1,
    radius_query_fraction_edge_length=0.6,
)
MODEL_FULL = _PUBLISHED_MODEL
MODEL_SMALL = dataclasses.replace(_PUBLISHED_MODEL, resolution=1.0, mesh_size=5)
MODEL_OPERATIONAL = _PUBLISHED_MODEL


@dataclasses.dataclass(frozen=True)
class PublishedModel:
    """One of DeepMind's published checkpoints, under its bucket file name."""

    key: str
    file_name: str
    model_config: ModelConfig
    task_config: TaskConfig


PUBLISHED_MODELS = {
    "small": PublishedModel(
        key="small",
        file_name=(
            "GraphCast_small - ERA5 1979-2015 - resolution 1.0 - pressure levels 13 - "
            "mesh 2to5 - precipitation input and output.npz"
        ),
        model_config=MODEL_SMALL,
        task_config=TASK_13,
    ),
    "full": PublishedModel(
        key="full",
        file_name=(
            "GraphCast - ERA5 1979-2017 - resolution 0.25 - pressure levels 37 - "
            "mesh 2to6 - precipitation input and output.npz"
        ),
        model_config=MODEL_FULL,
        task_config=TASK_37,
    ),
    "operational": PublishedModel(
        key="operational",
        file_name=(
            "GraphCast_operational - ERA5-HRES 1979-2021 - resolution 0.25 - pressure levels 13 - "
            "mesh 2to6 - precipitation output only.npz"
        ),
        model_config=MODEL_OPERATIONAL,
        task_config=TASK_13_PRECIP_OUT,
    ),
}

# A small model trained on synthetic fields (graphcast_zero.demo_model), in the official format,
# written by `fetch-data --source demo`; resolution 0 fits any grid.
DEMO_MODEL = PublishedModel(
    key="demo",
    file_name=(
        "GraphCast_demo - SYNTHETIC trained weights - resolution 0 - pressure levels 13 - "
        "mesh 3 - precipitation input and output.npz"
    ),
    model_config=dataclasses.replace(
        _PUBLISHED_MODEL, resolution=0.0, mesh_size=3, latent_size=32, gnn_msg_steps=4
    ),
    task_config=TASK_13,
)
