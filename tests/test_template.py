"""The remote-dev template: VS Code tasks and launch configs, the dev container, pre-commit.

Every VS Code task and debug config must parse as a command line of an existing invoke task
(checked with invoke's own parser, for each value its input pickers offer), and the problem
matchers must match what ruff and pytest really print. The AutoDL bootstrap script has its own
file, tests/test_autodl_bootstrap.py.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from invoke import Collection
from invoke.config import Config
from invoke.loader import FilesystemLoader
from invoke.parser import ParseError, Parser

ROOT = Path(__file__).resolve().parent.parent
VSCODE = ROOT / ".vscode"
DEVCONTAINER = ROOT / ".devcontainer" / "devcontainer.json"
INTERPRETER = "${command:python.interpreterPath}"
INPUT = re.compile(r"\$\{input:([^}]+)\}")

# The tutorial's steps, in order, as the invoke task each VS Code task runs.
TUTORIAL_ORDER = [
    "setup", "fetch-data", "fetch-data", "fetch-data", "setup", "run-inference", "run-training",
    "evaluate", "plot", "demo", "doctor", "test", "lint",
]  # fmt: skip


def load_jsonc(path: Path):
    """Parses JSON with comments and trailing commas (devcontainer.json's dialect), strictly."""
    text = path.read_text(encoding="utf-8")
    token = r'"(?:\\.|[^"\\])*"'  # strings go first, so '//' inside "https://..." stays
    text = re.sub(rf"{token}|//[^\n]*|/\*.*?\*/", _keep_strings, text, flags=re.S)
    text = re.sub(rf"{token}|,(?=\s*[}}\]])", _keep_strings, text)
    return json.loads(text)


def _keep_strings(match: re.Match) -> str:
    return match.group(0) if match.group(0).startswith('"') else ""


def load_vscode(name: str) -> dict:
    # Strict JSON on purpose: pre-commit's check-json then covers these files too.
    return json.loads((VSCODE / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def invoke_parser() -> Parser:
    module, _ = FilesystemLoader(start=str(ROOT), config=Config()).load("tasks")
    return Parser(contexts=Collection.from_module(module).to_contexts())


def expansions(args: list[str], inputs: dict) -> list[list[str]]:
    """Every argument list the inputs can produce: each pickString option, each default."""
    ids = sorted({name for arg in args for name in INPUT.findall(arg)})
    missing = [name for name in ids if name not in inputs]
    assert not missing, f"undefined inputs {missing}"
    choices = []
    for name in ids:
        spec = inputs[name]
        options = [
            opt["value"] if isinstance(opt, dict) else opt for opt in spec.get("options", [])
        ]
        choices.append(options or [spec["default"]])
    results = []
    for combo in itertools.product(*choices):
        values = dict(zip(ids, combo, strict=True))
        results.append([INPUT.sub(lambda m, v=values: v[m.group(1)], arg) for arg in args])
    return results


def parse_invoke(parser: Parser, argv: list[str]) -> str:
    """The invoke task an argument list runs; fails on unknown tasks, flags or bad values."""
    try:
        contexts = parser.parse_argv(argv)
    except (ParseError, ValueError) as err:
        pytest.fail(f"invoke {shlex.join(argv)}: {err}")
    assert len(contexts) == 1, f"invoke {shlex.join(argv)} runs {len(contexts)} tasks"
    return contexts[0].name


# ------------------------------------------------------------------------------ JSON validity


def test_jsonc_loader_keeps_strings_and_drops_comments_and_trailing_commas(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{\n  // note\n  "url": "https://x//y", /* block */ "list": [1, 2,],\n}\n')
    assert load_jsonc(path) == {"url": "https://x//y", "list": [1, 2]}
    path.write_text('{"a": 1 "b": 2}')
    with pytest.raises(json.JSONDecodeError):
        load_jsonc(path)


@pytest.mark.parametrize("name", ["tasks.json", "launch.json", "settings.json", "extensions.json"])
def test_vscode_files_are_strict_json(name):
    assert isinstance(load_vscode(name), dict)


def test_devcontainer_json_is_valid_jsonc():
    assert load_jsonc(DEVCONTAINER)["name"]


# --------------------------------------------------------------------------------- VS Code tasks


def test_every_vscode_task_runs_an_existing_invoke_task(invoke_parser):
    config = load_vscode("tasks.json")
    inputs = {spec["id"]: spec for spec in config["inputs"]}
    used = set()
    for task in config["tasks"]:
        assert task["command"] == INTERPRETER, task["label"]
        assert task["args"][:2] == ["-m", "invoke"], task["label"]
        used.update(INPUT.findall(" ".join(task["args"])))
        names = {parse_invoke(invoke_parser, argv[2:]) for argv in expansions(task["args"], inputs)}
        assert len(names) == 1, task["label"]
    assert used == set(inputs), "every input is used by a task"


def test_vscode_tasks_follow_the_tutorial_in_order(invoke_parser):
    tasks = load_vscode("tasks.json")["tasks"]
    inputs = {spec["id"]: spec for spec in load_vscode("tasks.json")["inputs"]}
    ran = [parse_invoke(invoke_parser, expansions(t["args"], inputs)[0][2:]) for t in tasks]
    assert ran == TUTORIAL_ORDER
    labels = [task["label"] for task in tasks]
    assert labels == sorted(labels), "VS Code lists tasks by label: the numbers keep the order"


def test_fetch_data_pickers_offer_every_model_and_source():
    inputs = {spec["id"]: spec for spec in load_vscode("tasks.json")["inputs"]}
    values = {
        name: [opt["value"] for opt in inputs[name]["options"]] for name in ("model", "source")
    }
    assert values == {"model": ["small", "full", "operational"], "source": ["gcs", "hf", "demo"]}
    assert inputs["dataset"]["default"] == "auto"


def test_launch_configs_debug_inference_training_and_tests(invoke_parser):
    config = load_vscode("launch.json")
    inputs = {spec["id"]: spec for spec in config.get("inputs", [])}
    debugged = []
    for launch in config["configurations"]:
        assert launch["type"] == "debugpy" and launch["request"] == "launch"
        for value in launch.get("env", {}).values():
            assert expansions([value], inputs)
        if launch["module"] == "invoke":
            debugged += [
                parse_invoke(invoke_parser, argv) for argv in expansions(launch["args"], {})
            ]
        else:
            debugged.append(launch["module"])
    assert debugged == ["run-inference", "run-training", "pytest"]


def test_settings_use_the_project_environment_ruff_and_pytest():
    settings = load_vscode("settings.json")
    assert settings["python.defaultInterpreterPath"] == "${workspaceFolder}/.venv/bin/python"
    assert settings["python.testing.pytestEnabled"] is True
    assert settings["python.testing.pytestArgs"] == ["tests"]
    assert settings["[python]"]["editor.defaultFormatter"] == "charliermarsh.ruff"
    wanted = {
        "ms-python.python",
        "ms-python.vscode-pylance",
        "ms-toolsai.jupyter",
        "charliermarsh.ruff",
    }
    assert wanted <= set(load_vscode("extensions.json")["recommendations"])


def matchers(label: str) -> list[dict]:
    task = next(t for t in load_vscode("tasks.json")["tasks"] if t["label"] == label)
    found = task["problemMatcher"]
    return found if isinstance(found, list) else [found]


def match_problems(found: list[dict], output: str) -> list[tuple[str, int | None]]:
    """(file, line) of every output line a matcher catches, as VS Code would read them."""
    problems = []
    for line, matcher in itertools.product(output.splitlines(), found):
        pattern = matcher["pattern"]
        hit = re.match(pattern["regexp"], line)
        if hit:
            lineno = hit.group(pattern["line"]) if "line" in pattern else None
            problems.append((hit.group(pattern["file"]), lineno and int(lineno)))
    return problems


def test_lint_matchers_catch_real_ruff_output(tmp_path):
    (tmp_path / "bad.py").write_text("import os\nx=1\n")
    env = {**os.environ, **load_vscode("tasks.json")["tasks"][-1]["options"]["env"]}
    output = ""
    for command in (["check", "--isolated"], ["format", "--isolated", "--check"]):
        output += subprocess.run(
            [sys.executable, "-m", "ruff", *command, "bad.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    problems = match_problems(matchers("11 Lint"), output)
    assert ("bad.py", 1) in problems, output  # F401: `os` imported but unused
    assert ("bad.py", 2) in problems, output  # not formatted: `x=1`


def test_test_matcher_catches_a_real_pytest_failure(tmp_path):
    (tmp_path / "test_fails.py").write_text("def test_it():\n    x = 1\n    assert x == 2\n")
    output = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_fails.py"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"},  # pytest's own format
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert match_problems(matchers("10 Tests"), output) == [("test_fails.py", 3)], output


# ------------------------------------------------------------------------------- dev container


def test_devcontainer_gpu_is_optional_and_setup_runs_after_create():
    config = load_jsonc(DEVCONTAINER)
    assert config["hostRequirements"]["gpu"] == "optional"
    # `--gpus all` is added by the tooling when the host has the NVIDIA runtime; hard-coded it
    # would stop the container from starting anywhere else.
    assert not any("gpus" in arg for arg in config.get("runArgs", []))
    assert "3.11" in config["image"]
    script = ROOT / config["postCreateCommand"].split()[-1]
    body = script.read_text()
    assert "invoke setup" in body and "pip install -e" in body and "dev,gpu" in body
    vscode = config["customizations"]["vscode"]
    wanted = {"ms-python.python", "ms-python.vscode-pylance", "ms-toolsai.jupyter"}
    assert wanted <= set(vscode["extensions"])
    assert vscode["settings"]["python.defaultInterpreterPath"].endswith("/.venv/bin/python")


@pytest.mark.skipif(shutil.which("devcontainer") is None, reason="devcontainers CLI not installed")
def test_devcontainer_cli_reads_the_configuration():
    # --docker-path: read-configuration only asks Docker for a running container; `true` says none.
    result = subprocess.run(
        [
            "devcontainer",
            "read-configuration",
            "--workspace-folder",
            str(ROOT),
            "--docker-path",
            shutil.which("true"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    read = json.loads(result.stdout)["configuration"]
    ours = load_jsonc(DEVCONTAINER)
    # The CLI's parser skips what it cannot read: every key must have survived it.
    assert set(read) - {"configFilePath"} == set(ours)
    workspace = json.loads(result.stdout)["workspace"]["workspaceFolder"]
    assert read["containerEnv"]["GRAPHCAST_DATA_DIR"] == f"{workspace}/data"


# ---------------------------------------------------------------------------------- pre-commit


def test_pre_commit_hooks_install_from_pypi_only():
    from pre_commit.clientlib import load_config

    config = load_config(str(ROOT / ".pre-commit-config.yaml"))  # pre-commit's own validation
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    hooks = {hook["id"]: hook for hook in config["repos"][0]["hooks"]}
    wanted = {
        "ruff",
        "ruff-format",
        "nbstripout",
        "check-json",
        "check-yaml",
        "check-toml",
        "check-added-large-files",
        "check-merge-conflict",
    }
    assert wanted <= set(hooks)
    for hook in hooks.values():
        assert hook["language"] == "python", hook["id"]
        for requirement in hook["additional_dependencies"]:
            assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][A-Za-z0-9_.]*", requirement), requirement
    raw = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    assert "://" not in json.dumps(raw["repos"]), "no URLs: nothing is fetched from GitHub"


def test_pre_commit_file_filters():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook for hook in config["repos"][0]["hooks"]}
    fixture = "tests/data/official-small/dataset/source-fake_date-2022-01-01_res-4.0.nc"
    assert re.search(hooks["check-added-large-files"]["exclude"], fixture)
    assert not re.search(hooks["check-added-large-files"]["exclude"], "notebooks/tutorial.ipynb")
    assert re.search(hooks["check-json"]["exclude"], ".devcontainer/devcontainer.json")
    assert not re.search(hooks["check-json"]["exclude"], ".vscode/tasks.json")
