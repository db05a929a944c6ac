"""The store lock: exclusive, beating, released; stale locks taken over only when asked."""

from __future__ import annotations

import dataclasses
import json
import os
import time

import pytest

from graphcast_zero.errors import InputError
from graphcast_zero.hindcast.lock import LOCK_FILE, LockRecord, StoreLock, read_lock


def write_record(folder, heartbeat: float, owner: str = "elsewhere:7") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    record = LockRecord(owner=owner, campaign="theirs", started=heartbeat, heartbeat=heartbeat)
    (folder / LOCK_FILE).write_text(json.dumps(dataclasses.asdict(record)))


def test_a_lock_is_held_until_released(tmp_path):
    with StoreLock(tmp_path / "hindcast", tmp_path) as lock:
        lock.acquire()
        held = read_lock(tmp_path / "hindcast" / LOCK_FILE)
        assert held.campaign == lock.record.campaign
        assert held.owner.endswith(f":{os.getpid()}")
        with pytest.raises(InputError, match="being written by another hindcast") as caught:
            StoreLock(tmp_path / "hindcast", tmp_path).acquire()
        assert "\n" not in str(caught.value)
    assert not (tmp_path / "hindcast" / LOCK_FILE).exists()


def test_the_heartbeat_moves_while_held(tmp_path):
    lock = StoreLock(tmp_path, tmp_path, heartbeat_s=0.05)
    lock.acquire()
    first = read_lock(tmp_path / LOCK_FILE).heartbeat
    deadline = time.monotonic() + 10
    while read_lock(tmp_path / LOCK_FILE).heartbeat == first and time.monotonic() < deadline:
        time.sleep(0.02)
    assert read_lock(tmp_path / LOCK_FILE).heartbeat > first
    lock.release()


def test_a_fresh_lock_is_not_broken_even_when_asked(tmp_path):
    write_record(tmp_path, heartbeat=time.time())
    with pytest.raises(
        InputError, match=r"another hindcast elsewhere:7 \(last heartbeat 0 s ago\)"
    ):
        StoreLock(tmp_path, tmp_path).acquire(break_stale=True)


def test_a_stale_lock_is_taken_over_only_with_break_stale(tmp_path):
    write_record(tmp_path, heartbeat=time.time() - 3 * 3600)
    with pytest.raises(
        InputError, match=r"stale lock \(hindcast elsewhere:7, last heartbeat 3.0 h"
    ):
        StoreLock(tmp_path, tmp_path).acquire()
    lock = StoreLock(tmp_path, tmp_path)
    lock.acquire(break_stale=True)
    assert read_lock(tmp_path / LOCK_FILE).campaign == lock.record.campaign
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_lock_taken_over_is_left_to_its_new_owner(tmp_path):
    old = StoreLock(tmp_path, tmp_path, heartbeat_s=0.05, stale_after_s=0.2)
    old.acquire()
    old._stop.set()  # the old campaign hangs: no more heartbeats
    old._thread.join()
    time.sleep(0.3)
    new = StoreLock(tmp_path, tmp_path, stale_after_s=0.2)
    new.acquire(break_stale=True)
    old.release()  # the old campaign wakes up and ends: the lock is no longer its own
    assert read_lock(tmp_path / LOCK_FILE).campaign == new.record.campaign
    new.release()


def test_an_unreadable_lock_counts_by_its_age(tmp_path):
    (tmp_path / LOCK_FILE).write_text("")  # just created by another campaign, not yet written
    with pytest.raises(InputError, match="being written by another campaign"):
        StoreLock(tmp_path, tmp_path).acquire()
    old = time.time() - 3600
    os.utime(tmp_path / LOCK_FILE, (old, old))
    with pytest.raises(InputError, match="stale lock"):
        StoreLock(tmp_path, tmp_path).acquire()
