"""Regenerates one configuration's folder: inputs, random checkpoint and the official outputs.

Needs DeepMind's graphcast package (see tests/data/README.md for the environment). Inputs that are
data come from the inputs folder (tests/data/ by default): the official-small batch and the
statistics are copied; the official-extra batches are derived from the official-small batch.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import xarray as xr
from configurations import SOURCE_BATCH, STATS_FILES, STATS_FOLDERS, Configuration
from datasets import derive_dataset
from graphcast import data_utils
from official import (
    OfficialPredictor,
    dump_checkpoint,
    extract,
    flatten_params,
    graph_arrays,
    max_difference_over_sigma,
    new_checkpoint,
    official_configs,
)
from tqdm import tqdm
from writing import copy_file, write_json, write_netcdf, write_npz

from graphcast_zero.atomic import atomic_path

PHASES = 7  # dataset, init, two rollouts, losses and gradients, graphs, self-check


class Stopwatch:
    """Wall-clock seconds per named phase, rounded to 0.1 s, in the order they ran."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._started = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._started, 1)
        self._started = now

    def total(self) -> dict[str, float]:
        return {**self.seconds, "total_s": round(sum(self.seconds.values()), 1)}


def load_statistics(folder: Path) -> dict[str, xr.Dataset]:
    """The three statistics files as ``InputsAndResiduals`` takes them (``<name>=dataset``)."""
    return {name.removesuffix(".nc"): xr.load_dataset(folder / name) for name in STATS_FILES}


def prepare_dataset(configuration: Configuration, inputs: Path, folder: Path) -> xr.Dataset:
    """Writes the configuration's dataset and statistics into ``folder``; returns the dataset."""
    for name in STATS_FILES:
        copy_file(inputs / STATS_FOLDERS[configuration.stats] / name, folder / "stats" / name)
    target = folder / "dataset" / configuration.dataset_file
    if configuration.recipe is None:
        copy_file(inputs / SOURCE_BATCH, target)
        return xr.load_dataset(target)
    small = load_statistics(inputs / STATS_FOLDERS["official-small"])
    dataset = derive_dataset(
        xr.load_dataset(inputs / SOURCE_BATCH),
        configuration.recipe,
        small["mean_by_level"],
        small["stddev_by_level"],
        data_utils.add_tisr_var,
    )
    write_netcdf(dataset, target, compressed=True)
    return dataset


class Run:
    """One configuration's official run, phase by phase, writing each file as it is made."""

    def __init__(self, configuration: Configuration, inputs: Path, output: Path):
        self.configuration = configuration
        self.inputs = inputs
        self.folder = output / configuration.folder
        self.reference = self.folder / "reference"
        self.compressed = configuration.extended
        self.watch = Stopwatch()
        self.progress = tqdm(total=PHASES, desc=configuration.name, unit="phase")

    def phase(self, name: str, seconds_key: str) -> None:
        self.watch.lap(seconds_key)
        self.progress.update()
        self.progress.set_postfix_str(f"{name} done")

    def run(self) -> dict[str, float]:
        """Writes every file of the configuration; returns the phase timings in seconds."""
        configuration = self.configuration
        dataset = prepare_dataset(configuration, self.inputs, self.folder)
        self.model, self.task = official_configs(configuration)
        self.train = extract(dataset, self.task, steps=1)
        self.evaluation = extract(dataset, self.task, steps=configuration.target_steps)
        self.phase("dataset", "dataset_s")

        stats = load_statistics(self.inputs / STATS_FOLDERS[configuration.stats])
        self.bfloat16 = OfficialPredictor(self.model, self.task, stats, bfloat16=True)
        self.float32 = OfficialPredictor(self.model, self.task, stats, bfloat16=False)
        self.params, _ = self.bfloat16.init(jax.random.PRNGKey(configuration.seed), *self.train)
        checkpoint = new_checkpoint(configuration, self.params, self.model, self.task)
        with atomic_path(self.folder / "params" / configuration.params_file) as temporary:
            dump_checkpoint(checkpoint, temporary)
        self.phase("init", "init_s")

        self.predictions = self.predict(self.bfloat16, "predictions.nc")
        self.phase("bfloat16 rollout", "predict_bf16_s")
        self.predictions_f32 = self.predict(self.float32, "predictions_float32.nc")
        self.phase("float32 rollout", "predict_f32_s")

        records = self.losses()
        self.phase("losses and gradients", "loss_grads_s")
        graphs = graph_arrays(self.model, self.task, self.train[0])
        write_npz(graphs, self.reference / configuration.graph_file, self.compressed)
        self.phase("graphs", "graph_s")
        if configuration.extended:
            consistency = self.self_consistency()
            self.phase("self-check", "selfcheck_s")
        else:
            self.progress.update()
        loss = self.loss_json(dataset, records, graphs)
        if configuration.extended:
            loss["self_consistency_max_abs_diff_over_sigma"] = consistency
            loss["timings_s"] = self.watch.total()
        write_json(loss, self.reference / "loss.json")
        self.progress.close()
        return self.watch.total()

    def predict(self, predictor: OfficialPredictor, file_name: str) -> xr.Dataset:
        predictions = predictor.predict(self.params, *self.evaluation)
        write_netcdf(predictions, self.reference / file_name, self.compressed)
        return predictions

    def losses(self) -> dict[str, dict]:
        """loss.json's loss records; writes the 1-step gradient trees."""
        records = {}
        records["train_1step"], grads = self.bfloat16.loss_record(self.params, *self.train)
        write_npz(flatten_params(grads), self.reference / "grads_train_1step.npz", self.compressed)
        if self.configuration.extended:
            records["train_1step_float32"], grads = self.float32.loss_record(
                self.params, *self.train
            )
            write_npz(flatten_params(grads), self.reference / "grads_train_1step_float32.npz", True)
        steps = self.configuration.target_steps
        records[f"eval_{steps}step"], _ = self.bfloat16.loss_record(self.params, *self.evaluation)
        return records

    def self_consistency(self) -> dict[str, float]:
        """DeepMind's code against itself: how far rounding alone moves its own predictions."""
        sigma = self.predictions_f32.std()
        unjitted = {
            name: predictor.predict(self.params, *self.evaluation, jit=False)
            for name, predictor in (("float32", self.float32), ("bfloat16", self.bfloat16))
        }
        return {
            "float32_jit_vs_nojit": max_difference_over_sigma(
                unjitted["float32"], self.predictions_f32, sigma
            ),
            "bfloat16_jit_vs_nojit": max_difference_over_sigma(
                unjitted["bfloat16"], self.predictions, sigma
            ),
            "bfloat16_vs_float32": max_difference_over_sigma(
                self.predictions, self.predictions_f32, sigma
            ),
        }

    def loss_json(self, dataset: xr.Dataset, records: dict, graphs: dict) -> dict:
        """loss.json: configs, sizes, loss records and graph shapes (official-extra: provenance)."""
        configuration = self.configuration
        loss = {"model_config": _as_json(self.model), "task_config": _as_json(self.task)}
        if configuration.extended:
            loss["task_name"] = configuration.task_name
        loss["num_params"] = sum(leaf.size for leaf in jax.tree.leaves(self.params))
        loss["init_rng"] = f"jax.random.PRNGKey({configuration.seed})"
        loss["loss_rng"] = "jax.random.PRNGKey(0)"
        if configuration.extended:
            recipe = configuration.recipe
            loss["stats"] = STATS_FOLDERS[configuration.stats]
            loss["dataset"] = configuration.dataset_file
            loss["grid"] = {
                "kind": recipe.grid.kind,
                "step_deg": recipe.grid.step,
                **{dim: dataset.sizes[dim] for dim in ("lat", "lon", "batch")},
                "starts": list(recipe.starts),
            }
        loss.update(records)
        loss["graph_array_shapes"] = {key: list(value.shape) for key, value in graphs.items()}
        if configuration.extended:
            reached = set(graphs["grid2mesh.edges.grid2mesh.receivers"].tolist())
            loss["mesh_nodes_without_grid2mesh_edges"] = len(graphs["mesh_vertices"]) - len(reached)
        return loss


def _as_json(config) -> dict:
    """A DeepMind config dataclass as loss.json records it (tuples as lists)."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in dataclasses.asdict(config).items()
    }


def generate(configuration: Configuration, inputs: Path, output: Path) -> dict[str, float]:
    """Writes every file of ``configuration`` under ``output``; returns the phase timings (s)."""
    return Run(configuration, inputs, output).run()
