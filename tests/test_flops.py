"""benchmarks/flops.py: XLA's count of a step's work, written as JSON."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from .conftest import REPO_ROOT


def load_flops():
    spec = importlib.util.spec_from_file_location("flops", REPO_ROOT / "benchmarks" / "flops.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["flops"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_counts_grow_with_the_grid_and_the_mesh(tmp_path):
    output = tmp_path / "flops.json"
    load_flops().main(["tiny", "medium", "--output", str(output)])
    report = json.loads(output.read_text())
    assert report["format"] == "graphcast-zero-flops/1" and report["versions"]["jax"]
    tiny, medium = report["configurations"]["tiny"], report["configurations"]["medium"]
    assert (tiny["grid_resolution_deg"], tiny["mesh_size"]) == (10.0, 2)
    assert (medium["grid_resolution_deg"], medium["mesh_size"]) == (2.0, 4)
    # 2° has 25x the grid points of 10° (91 x 180 against 19 x 36) and a finer mesh.
    assert 0 < tiny["flops_per_step"] < medium["flops_per_step"] / 5
    assert 0 < tiny["bytes_accessed_per_step"] < medium["bytes_accessed_per_step"]
