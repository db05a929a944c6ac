"""The invoke task collection: the contract's tasks and options, setup, doctor, test, and the README."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Collection

REPO_ROOT = Path(__file__).resolve().parents[1]

CONTRACT_OPTIONS = {
    "setup": {"data-dir", "dry-run", "kernel-name"},
    "fetch-data": {"model", "dataset", "steps", "list", "data-dir", "endpoint", "source"},
    "run-inference": {"params", "dataset", "stats-dir", "steps", "output", "precision", "data-dir"},
    "run-training": {"params", "random", "dataset", "steps", "iterations", "output", "data-dir"},
    "evaluate": {"run", "predictions", "variable", "level", "lead-time", "data-dir"},
    "plot": {"run", "predictions", "variable", "level", "lead-time", "data-dir"},
    "demo": {"data-dir"},
    "hindcast": {"init-start", "init-end", "every", "steps", "scheduler", "output", "data-dir"},
    "doctor": {"data-dir", "bucket-timeout", "endpoint"},
    "test": {"pytest-args"},
    "lint": set(),
}


def load_tasks():
    """A fresh copy of tasks.py: invoke consumes each task's help dict when it parses."""
    spec = importlib.util.spec_from_file_location("tasks_under_test", REPO_ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No user config, data folder or Jupyter kernels leak in or out."""
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    monkeypatch.delenv("GRAPHCAST_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)


def _data_folder_in(report: str) -> str:
    return re.search(r"data folder (\S+)", report).group(1)


# ------------------------------------------------------------------------------ the task list


def test_contract_tasks_exist_with_their_options():
    collection = Collection.from_module(load_tasks())
    assert set(CONTRACT_OPTIONS) <= set(collection.task_names)
    for name, options in CONTRACT_OPTIONS.items():
        arguments = {flag for arg in collection[name].get_arguments() for flag in arg.names}
        assert options <= arguments, name


def test_every_task_has_a_one_line_docstring_and_help_for_every_option():
    collection = Collection.from_module(load_tasks())
    for name, task in collection.tasks.items():
        doc = inspect.getdoc(task.body)
        assert doc and doc.strip().count("\n") == 0, name
        # get_arguments raises if a help key names no option, so typos fail here too.
        for argument in task.get_arguments():
            assert argument.help, f"{name} --{argument.name} has no help"


def test_help_output(run_invoke):
    code, out, _ = run_invoke("--help", "fetch-data")
    assert code == 0
    assert "--model" in out and "--source" in out and "small" in out


def test_library_errors_end_in_one_line_without_traceback(run_invoke):
    code, out, err = run_invoke("setup", "--kernel-name", "not a name!")
    assert code == 1
    assert "Traceback" not in out + err
    assert err.count("\n") == 1 and "kernel name 'not a name!' is invalid" in err


# ------------------------------------------------------------------------------------- setup


def test_setup_creates_folders_and_kernel(run_invoke, tmp_path):
    code, out, _ = run_invoke("setup", "--data-dir", str(tmp_path / "d"))
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "dataset",
        "outputs",
        "params",
        "stats",
    ]
    spec = json.loads((tmp_path / "jupyter/kernels/graphcast/kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    assert "installed" in out and str(tmp_path / "d") in out

    code, again, _ = run_invoke("setup", "--data-dir", str(tmp_path / "d"))
    assert code == 0 and "created" not in again and "installed" not in again


def test_setup_dry_run_writes_nothing(run_invoke, tmp_path):
    code, out, _ = run_invoke("setup", "--dry-run", "--data-dir", str(tmp_path / "d"))
    assert code == 0 and "would create" in out and "would install" in out
    assert not (tmp_path / "d").exists() and not (tmp_path / "jupyter").exists()


def test_data_folder_precedence(run_invoke, tmp_path, monkeypatch):
    config = tmp_path / "runtime.yaml"
    config.write_text(f"data_dir: {tmp_path / 'from-config'}\n")

    def data_folder(*extra):
        code, out, _ = run_invoke(*extra, "setup", "--dry-run")
        assert code == 0
        return _data_folder_in(out)

    assert data_folder() == str(tmp_path / "data")  # the default: ./data
    assert data_folder("-f", str(config)) == str(tmp_path / "from-config")
    monkeypatch.setenv("GRAPHCAST_DATA_DIR", str(tmp_path / "from-env"))
    assert data_folder("-f", str(config)) == str(tmp_path / "from-env")
    code, out, _ = run_invoke(
        "-f", str(config), "setup", "--dry-run", "--data-dir", str(tmp_path / "x")
    )
    assert code == 0 and _data_folder_in(out) == str(tmp_path / "x")


def test_project_invoke_yaml_sets_the_data_folder(tmp_path):
    # invoke reads invoke.yaml beside tasks.py: the README's way to move the data folder.
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO_ROOT / "tasks.py", project)
    (project / "invoke.yaml").write_text("data_dir: /mnt/big/graphcast\n")
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "setup", "--dry-run"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert _data_folder_in(result.stdout) == "/mnt/big/graphcast"


# ------------------------------------------------------------------------------------ doctor


def _refused_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_doctor_prints_the_table(run_invoke, tmp_path):
    endpoint = _refused_endpoint()
    code, out, _ = run_invoke(
        "doctor", "--data-dir", str(tmp_path), "--endpoint", endpoint, "--mirror", endpoint
    )
    assert code == 0
    rows = {line.split("  ")[0].strip() for line in out.splitlines()[1:-1]}
    for name in ("python", "jax", "jaxlib", "haiku", "xarray", "jax devices", "cuda"):
        assert name in rows
    for name in ("free disk", "params", "stats", "dataset", "jupyter kernel", "bucket"):
        assert name in rows
    assert re.search(r"^open data\s+WARN\s+unreachable", out, re.MULTILINE)
    assert re.search(r"^bucket\s+WARN\s+unreachable", out, re.MULTILINE)
    assert "invoke fetch-data --source demo" in out
    assert re.fullmatch(r"\d+ OK, \d+ WARN, 0 FAIL", out.splitlines()[-1])


def test_doctor_exits_non_zero_when_something_essential_fails(run_invoke, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    endpoint = _refused_endpoint()
    code, out, err = run_invoke(
        "doctor", "--data-dir", str(not_a_folder), "--endpoint", endpoint, "--mirror", endpoint
    )
    assert code == 1
    assert re.search(r"^data folder\s+FAIL", out, re.MULTILINE)
    assert err == "doctor: essential checks failed: data folder\n"


# ------------------------------------------------------------------------- test, README, CI


def _invoke_test(tmp_path, test_source: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(test_source)
    argv = [sys.executable, "-m", "invoke", "--search-root", str(REPO_ROOT), "test", *args]
    env = {**os.environ, "PYTEST_ADDOPTS": "-p no:cacheprovider"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize(
    "source, code",
    [
        ("def test_broken():\n    assert 1 + 1 == 3\n", 1),
        ("# no tests here\n", 5),
    ],
)
def test_invoke_test_passes_pytest_exit_codes_through(tmp_path, source, code):
    result = _invoke_test(tmp_path, source, "--pytest-args", str(tmp_path / "test_sample.py"))
    assert result.returncode == code, result.stdout + result.stderr


def test_invoke_test_passes_arguments_after_double_dash(tmp_path):
    source = "def test_a():\n    pass\n\ndef test_b():\n    assert False\n"
    result = _invoke_test(tmp_path, source, "--", str(tmp_path / "test_sample.py"), "-k", "test_a")
    assert result.returncode == 0, result.stdout
    assert "1 passed, 1 deselected" in result.stdout


def test_invoke_test_keeps_a_quoted_marker_expression_whole(tmp_path):
    # The quick check `invoke test -- -m "not slow"`: one argument with a space in it.
    source = "import pytest\n\n@pytest.mark.slow\ndef test_a():\n    assert False\n\ndef test_b():\n    pass\n"
    result = _invoke_test(
        tmp_path, source, "--", str(tmp_path / "test_sample.py"), "-m", "not slow"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 deselected" in result.stdout


def test_readme_quick_start_has_two_commands_and_ci_runs_the_test_one():
    readme = (REPO_ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^python3 -m venv .*$", quick_start, re.MULTILINE)
    assert len(commands) == 2
    main_job, test_command = commands
    assert test_command.endswith(".venv/bin/invoke test")
    ci = REPO_ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK)
    script = ci.read_text()
    assert "set -euo pipefail" in script
    assert test_command in script.splitlines()
    install = test_command.removesuffix(" && .venv/bin/invoke test")
    assert main_job.startswith(install + " && .venv/bin/invoke ")
