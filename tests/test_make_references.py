"""scripts/references/make_references.py: its compare mode here, its generation where DeepMind's
graphcast package is importable (tests/data/README.md describes that environment)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from .conftest import DATA_DIR, REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "references" / "make_references.py"
MESH4 = "official-extra/mesh4"


def _run(*args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=environment,
        timeout=1800,
    )


def _failures(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stdout.splitlines() if line.startswith("FAIL ")]


@pytest.fixture
def mesh4_copy(tmp_path):
    """A copy of the committed mesh4 references, as a regenerated folder would hold them."""
    shutil.copytree(DATA_DIR / MESH4, tmp_path / MESH4)
    return tmp_path


def test_help_names_the_modes_and_configurations():
    done = _run("--help")
    assert done.returncode == 0, done.stderr
    for word in ("--output", "--compare", "--only", "small", "mesh2_37lev", "mesh4"):
        assert word in done.stdout


def test_without_a_mode_it_says_what_to_give():
    done = _run()
    assert done.returncode == 2
    assert "give --output DIR to regenerate, --compare DIR to compare" in done.stderr


def test_an_unknown_configuration_is_named():
    done = _run("--compare", str(DATA_DIR), "--only", "mesh5")
    assert done.returncode == 1
    assert "--only mesh5: no such configuration" in done.stderr


def test_every_committed_file_matches_a_copy_of_itself(tmp_path):
    for folder in ("official-small", "official-extra"):
        shutil.copytree(DATA_DIR / folder, tmp_path / folder)
    done = _run("--compare", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all files match" in done.stdout
    # Every file of the five configurations was compared: 12 or 11 a configuration.
    assert done.stdout.count("predictions_float32.nc") == 5
    assert not _failures(done)


def test_a_float32_prediction_off_by_twice_the_tolerance_fails(mesh4_copy):
    path = mesh4_copy / MESH4 / "reference" / "predictions_float32.nc"
    predictions = xr.load_dataset(path)
    sigma = float(predictions["2m_temperature"].std())
    changed = predictions["2m_temperature"].values.copy()
    changed.flat[0] += 2e-4 * sigma  # the float32 tolerance is 1e-4 σ
    predictions["2m_temperature"].values = changed
    predictions.to_netcdf(path)
    done = _run("--compare", str(mesh4_copy), "--only", "mesh4")
    assert done.returncode == 1
    assert (
        f"FAIL {MESH4}/reference/predictions_float32.nc: 2m_temperature: sigma 0.0002 > 0.0001"
        in done.stdout
    )
    assert len(_failures(done)) == 1


def test_structure_differences_fail(mesh4_copy):
    loss_path = mesh4_copy / MESH4 / "reference" / "loss.json"
    loss = json.loads(loss_path.read_text())
    loss["num_params"] += 1
    del loss["graph_array_shapes"]["query_radius"]
    loss_path.write_text(json.dumps(loss))
    graph_path = mesh4_copy / MESH4 / "reference" / "graph.npz"
    with np.load(graph_path) as graph:
        arrays = dict(graph)
    arrays["mesh.edges.mesh.senders"] = arrays["mesh.edges.mesh.senders"][::-1].copy()
    np.savez(graph_path, **arrays)
    (mesh4_copy / MESH4 / "stats" / "mean_by_level.nc").unlink()

    done = _run("--compare", str(mesh4_copy), "--only", "mesh4")
    assert done.returncode == 1
    assert f"FAIL {MESH4}/reference/loss.json: num_params: values differ" in done.stdout
    assert f"FAIL {MESH4}/reference/loss.json: graph_array_shapes: keys" in done.stdout
    assert (
        f"FAIL {MESH4}/reference/graph.npz: mesh.edges.mesh.senders: values differ" in done.stdout
    )
    assert f"FAIL {MESH4}/stats/mean_by_level.nc: file: not regenerated" in done.stdout


@pytest.mark.official
@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("graphcast") is None,
    reason="needs DeepMind's graphcast package (see tests/data/README.md)",
)
def test_regenerated_mesh4_matches_the_committed_files(tmp_path):
    done = _run("--output", str(tmp_path), "--only", "mesh4", "--compare", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "all files match" in done.stdout
