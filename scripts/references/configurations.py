"""The reference configurations under tests/data/: what each one runs and which files it holds.

Five configurations: ``official-small`` (the demo notebook's "Random" model on the 4° example batch)
and the four of ``official-extra/`` (the 37-level task, precipitation as output only with the real
statistics, an explicit mesh→grid normalisation with a batch of two, a finer mesh on a grid without
poles). Each is a frozen :class:`Configuration`; nothing here imports DeepMind's package, so the
compare mode runs in the project's own environment.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

OFFICIAL_COMMIT = "08cf736"
SMALL_DATASET = "source-fake_date-2022-01-01_res-4.0_levels-13_steps-04.nc"
# The batch every dataset starts from, under the inputs folder (tests/data/).
SOURCE_BATCH = f"official-small/dataset/{SMALL_DATASET}"
STATS_FILES = ("diffs_stddev_by_level.nc", "mean_by_level.nc", "stddev_by_level.nc")
# Statistics folders under the inputs folder (tests/data/), by the name a configuration uses.
STATS_FOLDERS = {"official-small": "official-small/stats", "real-stats": "real-stats"}
LEVELS_13 = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)
LEVELS_37 = (
    1, 2, 3, 5, 7, 10, 20, 30, 50, 70, 100, 125, 150, 175, 200, 225, 250, 300, 350, 400, 450, 500,
    550, 600, 650, 700, 750, 775, 800, 825, 850, 875, 900, 925, 950, 975, 1000,
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Grid:
    """A regular lat/lon grid of ``step`` degrees.

    Attributes:
      step: spacing in degrees; 180 and 360 must be multiples of it.
      poles: latitudes −90…90 (poles included) when True, else the cell centres −90+step/2….
    """

    step: float
    poles: bool = True

    @property
    def kind(self) -> str:
        return "pole" if self.poles else "nopole"

    def latitudes(self) -> list[float]:
        if self.poles:
            return [-90 + self.step * i for i in range(round(180 / self.step) + 1)]
        return [-90 + self.step * (i + 0.5) for i in range(round(180 / self.step))]

    def longitudes(self) -> list[float]:
        return [self.step * j for j in range(round(360 / self.step))]


@dataclasses.dataclass(frozen=True)
class DatasetRecipe:
    """How an official-extra batch is derived from the official-small batch (see ``datasets``).

    Attributes:
      grid: the target grid.
      starts: the first frame's date and time of each batch member (ISO strings).
      levels: 13 or 37 pressure levels.
      frames: how many frames of the source batch to keep (2 inputs + the target steps).
    """

    grid: Grid
    starts: tuple[str, ...]
    levels: int = 13
    frames: int = 5

    def file_name(self) -> str:
        date = self.starts[0][:10]
        return (
            f"source-fake_date-{date}_res-{float(self.grid.step)}_levels-{self.levels}"
            f"_steps-{self.frames - 2:02d}.nc"
        )


@dataclasses.dataclass(frozen=True)
class Configuration:
    """One reference configuration: model, task, data and what is written.

    Attributes:
      name: ``small`` or the official-extra folder name.
      folder: where its files go, relative to the output (and inputs) folder.
      model: DeepMind's ``ModelConfig`` fields (``resolution`` omitted: always 0).
      task_name: the official preset (``TASK``, ``TASK_13``, ``TASK_13_PRECIP_OUT``); None for the
        demo notebook's "Random" model, which builds its task from ``TASK`` and 13 levels.
      seed: the parameter initialisation key, ``PRNGKey(seed)``.
      stats: ``official-small`` (synthetic) or ``real-stats`` (the bucket's ERA5 statistics).
      recipe: how the dataset is derived; None to copy the official-small batch.
      target_steps: steps of the evaluation rollout and loss.
      extended: official-extra's records: float32 loss and gradients, a self-consistency check,
        timings, and compressed files; official-small has none of these.
    """

    name: str
    folder: str
    model: dict
    task_name: Optional[str]
    seed: int
    stats: str
    recipe: Optional[DatasetRecipe]
    target_steps: int
    extended: bool

    @property
    def levels(self) -> int:
        return self.recipe.levels if self.recipe else 13

    @property
    def dataset_file(self) -> str:
        return self.recipe.file_name() if self.recipe else SMALL_DATASET

    @property
    def params_file(self) -> str:
        return "random_small.npz" if self.name == "small" else f"random_{self.name}.npz"

    @property
    def graph_file(self) -> str:
        return "graph_small.npz" if self.name == "small" else "graph.npz"

    def files(self) -> list[str]:
        """Every file this configuration writes, relative to its folder."""
        reference = ["grads_train_1step.npz", self.graph_file, "loss.json"]
        reference += ["predictions.nc", "predictions_float32.nc"]
        if self.extended:
            reference.append("grads_train_1step_float32.npz")
        return sorted(
            [f"params/{self.params_file}", f"dataset/{self.dataset_file}"]
            + [f"stats/{name}" for name in STATS_FILES]
            + [f"reference/{name}" for name in reference]
        )


def _model(mesh_size: int, latent_size: int, gnn_msg_steps: int, **others) -> dict:
    """``ModelConfig`` fields: one hidden layer and a 0.6 query radius unless ``others`` say."""
    return dict(
        mesh_size=mesh_size,
        latent_size=latent_size,
        gnn_msg_steps=gnn_msg_steps,
        hidden_layers=others.pop("hidden_layers", 1),
        radius_query_fraction_edge_length=others.pop("radius_query_fraction_edge_length", 0.6),
        **others,
    )


def _extra(
    name: str,
    seed: int,
    task_name: str,
    model: dict,
    recipe: DatasetRecipe,
    stats: str = "official-small",
) -> Configuration:
    """An official-extra configuration: three target steps and the extended records."""
    return Configuration(
        name=name,
        folder=f"official-extra/{name}",
        model=model,
        task_name=task_name,
        seed=seed,
        stats=stats,
        recipe=recipe,
        target_steps=3,
        extended=True,
    )


SMALL = Configuration(
    name="small",
    folder="official-small",
    model=_model(3, 32, 4),
    task_name=None,
    seed=0,
    stats="official-small",
    recipe=None,
    target_steps=4,
    extended=False,
)
EXTRAS = (
    _extra(
        "mesh2_37lev",
        seed=1,
        task_name="TASK",
        model=_model(2, 16, 2),
        recipe=DatasetRecipe(Grid(12.0), ("2022-01-01T00:00",), levels=37),
    ),
    _extra(
        "precip_out",
        seed=2,
        task_name="TASK_13_PRECIP_OUT",
        model=_model(3, 32, 3),
        recipe=DatasetRecipe(Grid(9.0), ("2020-07-15T06:00",)),
        stats="real-stats",
    ),
    _extra(
        "m2g_norm",
        seed=3,
        task_name="TASK_13",
        # Any factor but the default (the longest mesh→grid edge) shows in the edge features.
        model=_model(
            3, 24, 2, hidden_layers=2, mesh2grid_edge_normalization_factor=0.6180338738074472
        ),
        recipe=DatasetRecipe(Grid(12.0), ("2021-03-20T18:00", "2016-12-31T12:00")),
    ),
    _extra(
        "mesh4",
        seed=4,
        task_name="TASK_13",
        model=_model(4, 16, 1, radius_query_fraction_edge_length=0.5),
        recipe=DatasetRecipe(Grid(12.0, poles=False), ("2023-10-05T12:00",)),
    ),
)
CONFIGURATIONS = {configuration.name: configuration for configuration in (SMALL, *EXTRAS)}


def select(names: Optional[list[str]]) -> list[Configuration]:
    """The configurations named (all when ``names`` is empty), in the table's order.

    Raises:
      SystemExit: a name that is not a configuration, with the valid names.
    """
    if not names:
        return list(CONFIGURATIONS.values())
    unknown = [name for name in names if name not in CONFIGURATIONS]
    if unknown:
        raise SystemExit(
            f"--only {', '.join(unknown)}: no such configuration; choose from "
            + ", ".join(CONFIGURATIONS)
        )
    return [CONFIGURATIONS[name] for name in names]
