"""Atomic writes: the final name holds the old file or the complete new one, never a part."""

from __future__ import annotations

import stat

import pytest

from graphcast_zero.atomic import atomic_path
from graphcast_zero.errors import InputError


def test_atomic_path_keeps_the_old_file_when_a_write_fails(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as temporary:
            temporary.write_text("partial")
            raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_path_replaces_with_a_readable_file_and_creates_the_folder(tmp_path):
    path = tmp_path / "new" / "predictions.nc"
    with atomic_path(path) as temporary:
        assert temporary.parent == path.parent and temporary.suffix == ".nc"
        temporary.write_text("complete")
    assert path.read_text() == "complete"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["predictions.nc"]


def test_atomic_path_reports_an_unusable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="cannot write there"):
        with atomic_path(blocker / "out.npz"):
            pass
