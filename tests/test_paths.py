"""The data folder's precedence: --data-dir, then GRAPHCAST_DATA_DIR, then invoke config, then ./data."""

from __future__ import annotations

from pathlib import Path

from graphcast_zero.paths import DATA_DIR_ENV, DataPaths, resolve_data_dir


def test_explicit_beats_environment_and_config(tmp_path):
    env = {DATA_DIR_ENV: str(tmp_path / "env")}
    paths = resolve_data_dir(tmp_path / "explicit", config_value=tmp_path / "config", environ=env)
    assert paths.root == tmp_path / "explicit"


def test_environment_beats_config(tmp_path):
    env = {DATA_DIR_ENV: str(tmp_path / "env")}
    paths = resolve_data_dir(None, config_value=tmp_path / "config", environ=env)
    assert paths.root == tmp_path / "env"


def test_config_beats_default(tmp_path):
    paths = resolve_data_dir(None, config_value=tmp_path / "config", environ={})
    assert paths.root == tmp_path / "config"


def test_default_is_data_under_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_data_dir(environ={}).root == tmp_path.resolve() / "data"


def test_empty_values_fall_through(tmp_path):
    # An exported-but-empty GRAPHCAST_DATA_DIR must not mean "the current folder".
    paths = resolve_data_dir("", config_value=tmp_path / "config", environ={DATA_DIR_ENV: ""})
    assert paths.root == tmp_path / "config"


def test_relative_and_home_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir("sub/dir", environ={}).root == tmp_path.resolve() / "sub" / "dir"
    assert resolve_data_dir("~/gc", environ={}).root == tmp_path / "home" / "gc"


def test_payload_folders_and_stats_files():
    paths = DataPaths(Path("/d"))
    assert [p.name for p in paths.folders()] == ["params", "stats", "dataset", "outputs"]
    assert paths.params == Path("/d/params") and paths.outputs == Path("/d/outputs")
    assert [p.name for p in paths.stats_files()] == [
        "diffs_stddev_by_level.nc",
        "mean_by_level.nc",
        "stddev_by_level.nc",
    ]
    assert all(p.parent == Path("/d/stats") for p in paths.stats_files())
