"""One campaign at a time per store: a lock file with its owner and a heartbeat.

The lock is ``hindcast/lock.json`` inside the store, created with an exclusive create (so of two
campaigns starting together exactly one gets it). While the campaign runs, a background thread
rewrites the heartbeat every few seconds; at the end the lock is removed. A second campaign finds
the lock and stops with one line naming the owner and how long ago it last beat. A campaign that
died leaves its lock behind with an old heartbeat: that lock is *stale*, and ``--break-lock``
takes it over. A fresh lock is never broken, with or without the option.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Optional

from graphcast_zero.atomic import write_json
from graphcast_zero.errors import InputError

LOCK_FILE = "lock.json"
HEARTBEAT_S = 15.0
STALE_AFTER_S = 120.0  # eight missed heartbeats: the owner is gone


@dataclasses.dataclass(frozen=True)
class LockRecord:
    """What a lock file says: who holds the store, since when, and when it last beat."""

    owner: str
    campaign: str
    started: float
    heartbeat: float

    def age_s(self, now: Optional[float] = None) -> float:
        return (time.time() if now is None else now) - self.heartbeat


class StoreLock:
    """The lock of one store, held by this process while a campaign writes it.

    Args:
      folder: where the lock file lives (the store's ``hindcast`` folder).
      store: the store, for messages.
      heartbeat_s: seconds between heartbeats.
      stale_after_s: a heartbeat older than this marks the lock stale.
    """

    def __init__(
        self,
        folder: Path,
        store: Path,
        heartbeat_s: float = HEARTBEAT_S,
        stale_after_s: float = STALE_AFTER_S,
    ):
        self.path = Path(folder) / LOCK_FILE
        self.store = store
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.record = LockRecord(
            owner=f"{socket.gethostname()}:{os.getpid()}",
            campaign=uuid.uuid4().hex,
            started=time.time(),
            heartbeat=time.time(),
        )
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def acquire(self, break_stale: bool = False) -> None:
        """Takes the lock, or raises.

        Raises:
          InputError: another campaign holds it (fresh heartbeat), or a stale lock is there and
            ``break_stale`` is not set.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            self._take_over(break_stale)
        else:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(self._text())
        self._thread = threading.Thread(target=self._beat, name="hindcast-lock", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stops the heartbeat and removes the lock if it is still this campaign's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        current = read_lock(self.path)
        if current is not None and current.campaign == self.record.campaign:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _take_over(self, break_stale: bool) -> None:
        held = read_lock(self.path)
        age = held.age_s() if held is not None else _file_age_s(self.path)
        owner = "campaign (unreadable lock)" if held is None else f"hindcast {held.owner}"
        if age is not None and age < self.stale_after_s:
            raise InputError(
                f"store {self.store} is being written by another {owner} (last heartbeat "
                f"{age:.0f} s ago): wait for it to finish, or write another --output"
            )
        if not break_stale:
            since = "" if age is None else f", last heartbeat {_duration(age)} ago"
            raise InputError(
                f"store {self.store} holds a stale lock ({owner}{since}, {self.path}): if that "
                "campaign is no longer running, pass --break-lock to take the store over"
            )
        write_json(dataclasses.asdict(self.record), self.path)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            current = read_lock(self.path)
            if current is None or current.campaign != self.record.campaign:
                return  # taken over (--break-lock elsewhere): stop claiming it
            self.record = dataclasses.replace(self.record, heartbeat=time.time())
            try:
                write_json(dataclasses.asdict(self.record), self.path)
            except (OSError, InputError):
                pass  # a missed beat; the next one tries again

    def _text(self) -> str:
        return json.dumps(dataclasses.asdict(self.record), indent=1) + "\n"


def read_lock(path: Path) -> Optional[LockRecord]:
    """The lock file's record, or None when it is missing or unreadable."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        return LockRecord(**{f.name: payload[f.name] for f in dataclasses.fields(LockRecord)})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _file_age_s(path: Path) -> Optional[float]:
    """Seconds since the file last changed: a lock just created may not be written yet."""
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return None


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
