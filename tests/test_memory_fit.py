"""The memory-fit search: its arithmetic by hand, and a smoke run on a tiny configuration."""

from __future__ import annotations

import importlib.util
import json
import sys
import types

import pytest

from .conftest import REPO_ROOT


@pytest.fixture(scope="module")
def memory_fit():
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(
        "memory_fit", REPO_ROOT / "benchmarks" / "memory_fit.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_doublings_end_at_the_largest(memory_fit):
    assert memory_fit.doublings(1) == [1]
    assert memory_fit.doublings(8) == [1, 2, 4, 8]
    assert memory_fit.doublings(12) == [1, 2, 4, 8, 12]


def test_peak_is_arguments_outputs_and_temporaries_less_aliases(memory_fit):
    stats = types.SimpleNamespace(
        argument_size_in_bytes=100,
        output_size_in_bytes=20,
        temp_size_in_bytes=300,
        alias_size_in_bytes=20,
    )
    assert memory_fit.peak_bytes(stats) == 400


def test_largest_fitting_prefers_the_most_work_then_the_larger_batch(memory_fit):
    candidates = [
        {"batch": 1, "steps": 4, "estimated_bytes": 10},
        {"batch": 4, "steps": 1, "estimated_bytes": 12},
        {"batch": 2, "steps": 4, "estimated_bytes": 30},
    ]
    assert memory_fit.largest_fitting(candidates, 20)["batch"] == 4  # 4×1 beats 1×4 on batch
    assert memory_fit.largest_fitting(candidates, 30)["batch"] == 2  # 8 units of work
    assert memory_fit.largest_fitting(candidates, 5) is None


def test_tiny_search_grows_with_batch_and_stops_at_the_budget(memory_fit, tmp_path):
    output = tmp_path / "fit.json"
    report = memory_fit.main(
        ["--config", "tiny", "--precision", "float32", "--max-batch", "2", "--phases",
         "inference", "--inference-steps", "1", "2", "--budget-gb", "1", "--output", str(output)]
    )  # fmt: skip
    assert json.loads(output.read_text())["format"] == "graphcast-zero-memory-fit/1"
    candidates = report["phases"]["inference"]["candidates"]
    by_shape = {(c["batch"], c["steps"]): c["estimated_bytes"] for c in candidates}
    assert by_shape[(2, 1)] > by_shape[(1, 1)] and by_shape[(1, 2)] > by_shape[(1, 1)]
    assert report["phases"]["inference"]["largest_fitting"] == {
        **candidates[-1],
        "batch": 2,
        "steps": 2,
    }
    # A budget between batch 1 and batch 2 keeps batch 1 and never compiles batch 4.
    budget_gb = (by_shape[(1, 1)] + by_shape[(2, 1)]) / 2 / 2**30
    tight = memory_fit.main(
        ["--config", "tiny", "--precision", "float32", "--max-batch", "4", "--phases",
         "inference", "training", "--inference-steps", "1", "--training-steps", "1",
         "--budget-gb", str(budget_gb), "--output", str(output)]
    )  # fmt: skip
    phase = tight["phases"]["inference"]
    assert phase["largest_fitting"]["batch"] == 1
    assert [(c["batch"], c["fits"]) for c in phase["candidates"]] == [(1, True), (2, False)]
    training = tight["phases"]["training"]["candidates"]
    assert training[0]["estimated_bytes"] > 0 and len(training) <= 3


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--max-batch", "0", "'0' is not a whole number above zero"),
        ("--training-steps", "two", "'two' is not a whole number above zero"),
        ("--budget-gb", "-1", "'-1' is not a number above zero"),
    ],
)
def test_bad_numbers_are_one_line_usage_errors(memory_fit, capsys, option, value, message):
    with pytest.raises(SystemExit) as exited:
        memory_fit.parse_args([option, value])
    assert exited.value.code == 2
    assert f"argument {option}: {message}" in capsys.readouterr().err
