"""The cluster side: which GPUs a local cluster pins, and a scheduler that cannot be reached."""

from __future__ import annotations

import os
import types

import pytest

from graphcast_zero.errors import FetchError
from graphcast_zero.hindcast import engine

from ..gcs_emulator import free_port


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert engine.visible_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert engine.visible_gpus() == []


def test_each_local_worker_gets_its_own_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "unset")
    pin = engine.PinDevice(["2", "5"])
    for name, device in ((0, "2"), (1, "5"), (2, "2")):
        pin.setup(types.SimpleNamespace(name=name))
        assert os.environ["CUDA_VISIBLE_DEVICES"] == device


def test_an_unreachable_scheduler_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT_S", 2)
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(FetchError, match=f"cannot reach the Dask scheduler at {address}") as caught:
        with engine.dask_client(address, None, log=lambda _: None):
            pass
    assert "\n" not in str(caught.value)
