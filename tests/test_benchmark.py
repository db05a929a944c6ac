"""The benchmark script: a smoke run on a tiny configuration, and its summary arithmetic."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from .conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "benchmark.py"


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmark"] = module
    spec.loader.exec_module(module)
    return module


def _run(impl, phase, **values):
    return {"impl": impl, "phase": phase, "precision": "float32", "load_average": [1, 1, 1],
            "wall_s": 9.0, **values}  # fmt: skip


def test_summary_takes_medians_and_memory_maxima_and_ratios(benchmark):
    runs = [
        _run("ours", "inference", step_s=[1.0, 3.0], compile_s=2.0, rollout_compile_s=2.0,
             prepare_s=1.0, rollout_s=4.0, graph_build_s=1.0, peak_host_mb=100.0,
             peak_device_mb=None),
        _run("official", "inference", step_s=[4.0], compile_s=6.0, rollout_compile_s=0.0,
             rollout_s=16.0, graph_build_s=2.0, peak_host_mb=300.0, peak_device_mb=None),
        _run("ours", "training", train_step_s=[5.0], train_compile_s=1.0, peak_host_mb=500.0),
        _run("official", "training", train_step_s=[10.0], train_compile_s=1.0, peak_host_mb=250.0),
    ]  # fmt: skip
    table = benchmark.summarize(runs, rollout_steps=2)
    ours, official = table["ours"]["float32"], table["official"]["float32"]
    assert ours["step_s"] == 2.0  # median of 1 and 3
    assert ours["rollout_steps_per_s"] == 0.5
    # compile + one preparation + 40 steps at (rollout - preparation) / steps each
    assert ours["rollout_40_steps_s_estimated"] == 2.0 + 1.0 + 40 * (4.0 - 1.0) / 2
    assert official["rollout_40_steps_s_estimated"] == 6.0 + 40 / (2 / 16)
    assert ours["inference_peak_host_mb"] == 100.0 and ours["training_peak_host_mb"] == 500.0
    assert "inference_peak_device_mb" not in ours  # None (CPU) is left out
    ratio = benchmark.ratios(table)["float32"]
    assert ratio["step_s"] == 2.0 and ratio["train_step_s"] == 2.0
    assert ratio["rollout_steps_per_s_ours_over_official"] == 4.0
    assert ratio["inference_peak_host_mb_ours_over_official"] == pytest.approx(1 / 3)
    assert ratio["training_peak_host_mb_ours_over_official"] == 2.0


def test_a_plan_of_plans_is_estimated_with_its_rollout_compile(benchmark):
    runs = [_run("ours 4:1:0", "inference", step_s=[1.0], compile_s=5.0, rollout_compile_s=2.0,
                 prepare_s=1.0, rollout_s=4.0)]  # fmt: skip
    row = benchmark.summarize(runs, rollout_steps=2)["ours 4:1:0"]["float32"]
    assert row["rollout_40_steps_s_estimated"] == 2.0 + 1.0 + 40 * (4.0 - 1.0) / 2


@pytest.mark.slow
def test_tiny_benchmark_writes_json_with_every_field(benchmark, tmp_path):
    output = tmp_path / "tiny.json"
    benchmark.main(
        ["--config", "tiny", "--precision", "float32", "--rollout-steps", "2",
         "--step-repeats", "1", "--no-compare", "--output", str(output)]
    )  # fmt: skip
    report = json.loads(output.read_text())
    assert report["format"] == "graphcast-zero-benchmark/1"
    assert report["device"]["platform"] == "cpu"
    assert report["versions"]["jax"]
    assert report["configuration"]["model"]["mesh_size"] == 2
    assert report["configuration"]["grid_shape"] == [19, 36]
    assert len(report["load_average"]["start"]) == 3 and len(report["load_average"]["end"]) == 3
    assert [(r["impl"], r["phase"]) for r in report["runs"]] == [
        ("ours", "inference"),
        ("ours", "training"),
    ]
    row = report["summary"]["ours"]["float32"]
    for key in (
        "graph_build_s", "compile_s", "prepare_s", "step_s", "rollout_steps_per_s",
        "rollout_40_steps_s_estimated", "train_step_s", "train_compile_s",
        "inference_peak_host_mb", "training_peak_host_mb",
    ):  # fmt: skip
        assert row[key] > 0, key
    assert report["ratios"] == {}
