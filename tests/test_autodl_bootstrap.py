"""scripts/autodl_bootstrap.sh, run in temporary folders against a local clone of this tree.

No network and no real pip: the dry run shows the whole plan, and the real runs use a stand-in
environment whose `python` and `invoke` only record how they were called.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = ROOT / "scripts" / "autodl_bootstrap.sh"
MIRROR = "http://mirror.example.org:8080/pypi/simple"


@pytest.fixture(scope="module")
def source_repo(tmp_path_factory) -> Path:
    """A git repository holding the current working tree (committed or not), minus big fixtures."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    repo = tmp_path_factory.mktemp("source") / "graphcast-zero"
    for name in filter(None, listed.stdout.split("\0")):
        if name.startswith("tests/data/") or not (ROOT / name).is_file():
            continue
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run([*git, *command], cwd=repo, check=True, capture_output=True)
    return repo


def bootstrap(tmp: Path, *args, script: Path = BOOTSTRAP, path_prefix: str = ""):
    """Runs the bootstrap with a private HOME and none of the user's GraphCast or pip settings.

    The real nvidia-smi, if any, is hidden: a GPU appears only through a stub in `path_prefix`.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAPHCAST_", "PIP_INDEX"))}
    env["HOME"] = str(tmp / "home")
    folders = [d for d in env["PATH"].split(os.pathsep) if not (Path(d) / "nvidia-smi").exists()]
    env["PATH"] = path_prefix + os.pathsep.join(folders)
    (tmp / "home").mkdir(exist_ok=True)
    command = ["bash", str(script), *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def stub(path: Path, log: Path) -> None:
    """An executable that records its arguments, standing in for nvidia-smi, python or invoke."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho "$(basename "$0") $*" >> "{log}"\n')
    path.chmod(0o755)


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path, source_repo):
    disk, code, venv = tmp_path / "disk", tmp_path / "code", tmp_path / "disk/venvs/graphcast"
    data = disk / "graphcast-data"
    disk.mkdir()
    stub(tmp_path / "bin" / "nvidia-smi", tmp_path / "unused.log")  # looks like a GPU box
    result = bootstrap(
        tmp_path, "--dry-run", "--repo", source_repo, "--code-dir", code, "--data-disk", disk,
        "--venv-on-data-disk", "--pypi-mirror", MIRROR, path_prefix=f"{tmp_path / 'bin'}:",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plan = [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert ["git", "clone", str(source_repo), str(code)] in plan
    assert any(argv[-3:] == ["-m", "venv", str(venv)] for argv in plan)
    assert ["ln", "-sfn", str(venv), str(code / ".venv")] in plan
    pip = f"{venv}/bin/python -m pip install --index-url {MIRROR} --trusted-host mirror.example.org"
    assert [*pip.split(), "-e", f"{code}[gpu,dev]"] in plan
    setup = f"{venv}/bin/invoke --search-root {code} setup --data-dir {data}"
    assert setup.split() in plan
    assert not code.exists() and list(disk.iterdir()) == []
    assert not (tmp_path / "home" / ".bashrc").exists()


def test_clones_installs_sets_up_and_runs_again_safely(tmp_path, source_repo):
    disk, code, venv = tmp_path / "disk", tmp_path / "code", tmp_path / "disk/venvs/graphcast"
    data, log = disk / "graphcast-data", tmp_path / "calls.log"
    for tool in ("python", "invoke"):  # an existing environment on the data disk
        stub(venv / "bin" / tool, log)
    args = ["--repo", source_repo, "--code-dir", code, "--data-disk", disk, "--venv-on-data-disk"]
    first = bootstrap(tmp_path, *args)
    assert first.returncode == 0, first.stderr
    assert (code / "tasks.py").is_file() and data.is_dir()
    assert (code / ".venv").resolve() == venv.resolve()
    assert (code / "invoke.yaml").read_text() == f"data_dir: {data}\n"
    assert log.read_text().splitlines() == [
        f"python -m pip install -e {code}[dev]",  # no nvidia-smi here: no GPU extra
        f"invoke --search-root {code} setup --data-dir {data}",
    ]
    second = bootstrap(tmp_path, *args)
    assert second.returncode == 0, second.stderr
    assert "already a checkout" in second.stdout and "already exists" in second.stdout
    bashrc = (tmp_path / "home" / ".bashrc").read_text()
    assert bashrc.count(f"export GRAPHCAST_DATA_DIR={data}") == 1
    status = subprocess.run(["git", "status", "--porcelain"], cwd=code, capture_output=True)
    assert status.stdout == b"", "the .venv link and invoke.yaml stay out of git status"


def test_clones_the_origin_of_its_own_checkout(tmp_path, source_repo):
    one, two, no_disk = tmp_path / "one", tmp_path / "two", tmp_path / "no-disk"
    first = bootstrap(
        tmp_path, "--skip-install", "--repo", source_repo, "--code-dir", one, "--data-disk", no_disk
    )
    assert first.returncode == 0, first.stderr
    script = one / "scripts" / "autodl_bootstrap.sh"
    second = bootstrap(
        tmp_path, "--skip-install", "--code-dir", two, "--data-disk", no_disk, script=script
    )
    assert second.returncode == 0, second.stderr
    origin = subprocess.run(["git", "remote", "get-url", "origin"], cwd=two, capture_output=True)
    assert origin.stdout.decode().strip() == str(source_repo)
    # No data disk: the data folder is the checkout's ./data, so nothing needs remembering.
    assert (two / "data").is_dir() and not (two / "invoke.yaml").exists()


def test_refuses_a_folder_it_did_not_clone(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "notes.txt").write_text("mine")
    result = bootstrap(tmp_path, "--repo", "unused", "--code-dir", tmp_path / "code")
    assert result.returncode == 1
    assert "not a git checkout" in result.stderr and "--code-dir" in result.stderr


def test_rejects_unknown_options(tmp_path):
    result = bootstrap(tmp_path, "--gpu")
    assert result.returncode == 2 and "unknown option --gpu" in result.stderr
