"""The memory-fit search: its arithmetic by hand, and a smoke run on a tiny configuration."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys

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


def test_largest_fitting_prefers_the_most_work_then_the_larger_batch(memory_fit):
    candidates = [
        {"batch": 1, "steps": 4, "estimated_bytes": 10},
        {"batch": 4, "steps": 1, "estimated_bytes": 12},
        {"batch": 2, "steps": 4, "estimated_bytes": 30},
    ]
    assert memory_fit.largest_fitting(candidates, 20)["batch"] == 4  # 4×1 beats 1×4 on batch
    assert memory_fit.largest_fitting(candidates, 30)["batch"] == 2  # 8 units of work
    assert memory_fit.largest_fitting(candidates, 5) is None


@pytest.mark.slow
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


def test_run_needs_the_device_itself(memory_fit, capsys):
    with pytest.raises(SystemExit) as exited:
        memory_fit.parse_args(
            ["--run", "--target-config", "benchmarks/targets/h100-sxm-80gb.txtpb"]
        )
    assert exited.value.code == 2
    assert "--run needs the device itself" in capsys.readouterr().err


def test_a_missing_target_config_is_named(memory_fit, tmp_path):
    missing = tmp_path / "a100.txtpb"
    with pytest.raises(SystemExit, match=f"cannot read {missing}: No such file"):
        memory_fit.compile_only_device(missing)


def test_the_h100_target_compiles_without_a_gpu_or_says_what_to_install(memory_fit, tmp_path):
    target = REPO_ROOT / "benchmarks" / "targets" / "h100-sxm-80gb.txtpb"
    plugins = importlib.util.find_spec("jax_plugins") and [
        importlib.util.find_spec(f"jax_plugins.xla_cuda{version}") for version in (12, 13)
    ]
    if not any(plugins or []):
        with pytest.raises(SystemExit, match=r'pip install "jax\[cuda12\]"'):
            memory_fit.compile_only_device(target)
        return
    # The plugin starts only in a process whose JAX has not looked for devices yet (this one
    # has, in other tests), as memory_fit runs: so in a fresh one.
    bad = tmp_path / "bad.txtpb"
    bad.write_text("gpu_device_info { no_such_field: 3 }\n")
    script = f"""
import sys
sys.path.insert(0, "benchmarks")
import memory_fit
device = memory_fit.compile_only_device(memory_fit.Path({str(target)!r}))
info = memory_fit.target_info(device, memory_fit.Path({str(target)!r}))
print(device.device_kind, info["compile_only"], info["target_config"])
try:
    memory_fit.compile_only_device(memory_fit.Path({str(bad)!r}))
except SystemExit as error:
    print(error)
"""
    environment = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=environment,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "NVIDIA H100 80GB HBM3 True h100-sxm-80gb.txtpb"
    assert f"{bad} is not a valid XLA GPU target config" in lines[1]


@pytest.mark.slow
def test_operands_placed_on_a_device_compile_to_the_same_estimate(memory_fit):
    import jax

    from graphcast_zero.memory import MemoryPlan, compiled_bytes

    cpu = jax.devices("cpu")[0]
    plain = memory_fit.Candidates("tiny", "float32")
    placed = memory_fit.Candidates("tiny", "float32", device=cpu)
    plan = MemoryPlan()
    # On a CPU a forecast keeps the edge terms, so inference is compiled with them prepared.
    assert placed.base.reuse_edge_terms
    assert "static" in placed.operands("inference", 1, 1, plan)[1]
    assert "static" not in placed.operands("training", 1, 1, plan)[1]
    operands = placed.operands("training", 2, 1, plan)
    leaves = jax.tree.leaves(operands)
    assert all(isinstance(leaf, jax.ShapeDtypeStruct) for leaf in leaves)
    assert {leaf.sharding.device_set == {cpu} for leaf in leaves} == {True}
    # Parameters keep their shapes and batch-dependent inputs their new batch.
    assert jax.tree.map(lambda a: a.shape, operands[0]) == jax.tree.map(
        lambda a: a.shape, plain.params
    )
    assert next(iter(operands[3].values())).shape[:2] == (2, 1)  # targets [batch, steps, ...]

    def estimate(candidates):
        program = candidates.program("inference", plan)
        return compiled_bytes(
            program.lower(*candidates.operands("inference", 1, 2, plan)).compile()
        )

    assert estimate(placed) == estimate(plain)


def test_chunked_operands_carry_the_grid_edges_by_chunk(memory_fit):
    from graphcast_zero.memory import MemoryPlan

    candidates = memory_fit.Candidates("tiny", "float32")
    graph = candidates.operands("training", 1, 1, MemoryPlan(grid_chunks=3), placed=False)[1]
    graph = graph["graph"]
    assert graph["grid2mesh"]["senders"].shape[0] == 3
    assert graph["mesh2grid"]["features"].shape[0] == 3
    assert graph["mesh"]["senders"].ndim == 1  # the processor's edges are not chunked


def test_scheduler_is_given_the_budget_as_a_share_of_the_device(memory_fit):
    # XLA's default lets a program fill 95% of the device; a 20 GiB budget on 80 GiB: 23%.
    assert memory_fit.scheduler_options(80 * 2**30, 20 * 2**30) == {
        "xla_gpu_memory_limit_slop_factor": 23
    }
    assert memory_fit.scheduler_options(80 * 2**30, 80 * 2**30) == {}
    assert memory_fit.scheduler_options(None, 20 * 2**30) == {}


def _readme_target_command() -> list[str]:
    """The benchmarks README's compile-for-a-target command, as its arguments."""
    text = (REPO_ROOT / "benchmarks" / "README.md").read_text().replace("\\\n", " ")
    line = next(
        line for line in text.splitlines() if "memory_fit.py" in line and "--target-config" in line
    )
    words = shlex.split(line)
    return words[words.index("benchmarks/memory_fit.py") + 1 :]


def test_target_config_command_as_the_readme_writes_it(tmp_path):
    # The README's command in a fresh process with JAX_PLATFORMS unset, as a user runs it: on a
    # tiny configuration, one candidate. With JAX's CUDA plugin it compiles for the H100
    # without a GPU; without it, it says in one line what to install.
    arguments = _readme_target_command()
    arguments[arguments.index("--config") + 1] = "tiny"
    output = tmp_path / "fit.json"
    arguments += ["--max-batch", "1", "--inference-steps", "1", "--output", str(output)]
    environment = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    done = subprocess.run(
        [sys.executable, "benchmarks/memory_fit.py", *arguments],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if importlib.util.find_spec("jax_plugins") is None or not any(
        importlib.util.find_spec(f"jax_plugins.xla_cuda{version}") for version in (12, 13)
    ):
        assert done.returncode == 1
        assert done.stderr.strip().splitlines()[-1] == (
            "memory_fit: cannot compile for benchmarks/targets/h100-sxm-80gb.txtpb here; it "
            'needs JAX\'s CUDA plugin: pip install "jax[cuda12]"'
        )
    else:
        assert done.returncode == 0, done.stderr[-2000:]
        report = json.loads(output.read_text())
        assert report["device"]["compile_only"] and report["phases"]["inference"]["candidates"]


def test_an_installed_plugin_without_a_cuda_target_is_named_as_such(memory_fit, monkeypatch):
    # What a user met: the plugin installed, but JAX offering no CUDA target (its start-up had
    # failed). The message says that, not that the plugin is missing.
    from jax.experimental import topologies

    def no_cuda(*args, **kwargs):
        raise NotImplementedError("topology not implemented for cuda")

    monkeypatch.setattr(topologies, "get_topology_desc", no_cuda)
    monkeypatch.setattr(memory_fit, "cuda_plugin", lambda: "jax-cuda12-plugin 0.10.2")
    target = REPO_ROOT / "benchmarks" / "targets" / "h100-sxm-80gb.txtpb"
    with pytest.raises(SystemExit) as exited:
        memory_fit.compile_only_device(target)
    message = str(exited.value)
    assert "\n" not in message
    assert "CUDA plugin (jax-cuda12-plugin 0.10.2, jax " in message
    assert "is installed but offers no CUDA topology (topology not implemented for cuda)" in message
