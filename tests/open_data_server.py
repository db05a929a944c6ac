"""A local stand-in for ECMWF's open-data server, for offline tests of the real client.

- :func:`write_run`: step 0 of one IFS run as the open data lays it out — one GRIB2 file holding
  every field (surface, statics, 14 pressure levels, and parameters GraphCast does not read) and
  its ``.index`` file of JSON lines (``param``, ``levtype``, ``levelist``, ``_offset``,
  ``_length`` …), under ``{YYYYMMDD}/{HH}z/ifs/0p25/{stream}/{YYYYMMDDHHMMSS}-0h-{stream}-fc``.
  The 06/18 UTC runs are in stream ``scda`` before IFS cycle 50r1 (2026-05-12) and in ``oper``
  since, as ECMWF publishes them. Values come from the project's generator
  (:func:`graphcast_zero.synthetic.make_open_data_fields`), encoded with ecCodes as IEEE float32
  so a test can compare exactly.
- :func:`serving`: an HTTP server on 127.0.0.1 for such a folder: ``HEAD``, ``GET``, single and
  multiple byte ranges (``multipart/byteranges``), 404 for what is not there, and a switch that
  cuts chosen files' transfers short. It records every request.
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from graphcast_zero import synthetic
from graphcast_zero.config import PRESSURE_LEVELS_13

from . import gcs_emulator

LEVELS = (*PRESSURE_LEVELS_13, 10)  # the open data's 14 levels
EXTRA_PARAMETERS = (("sp", None), ("r", "pl"))  # published, not read by GraphCast
CYCLE_50R1 = datetime.date(2026, 5, 12)  # 06/18 UTC runs moved from stream scda to oper
BOUNDARY = "gz-test-boundary"


def stream_of(run: pd.Timestamp) -> str:
    if run.hour in (6, 18) and run.date() < CYCLE_50R1:
        return "scda"
    return "oper"


def data_path(run: pd.Timestamp) -> str:
    """The data file of step 0 of ``run``, relative to the server's root."""
    stream = stream_of(run)
    return f"{run:%Y%m%d}/{run:%H}z/ifs/0p25/{stream}/{run:%Y%m%d%H%M%S}-0h-{stream}-fc.grib2"


def encode(
    param: str, level: Optional[int], run: pd.Timestamp, lat: np.ndarray, lon: np.ndarray,
    values: np.ndarray,
) -> bytes:  # fmt: skip
    """One GRIB2 message on a regular grid (rows ``lat``, columns ``lon``), IEEE float32."""
    import eccodes

    sample = "regular_ll_pl_grib2" if level is not None else "regular_ll_sfc_grib2"
    message = eccodes.codes_grib_new_from_samples(sample)
    try:
        eccodes.codes_set(message, "centre", "ecmf")
        eccodes.codes_set_key_vals(message, f"Ni={lon.size},Nj={lat.size}")
        for key, value in (
            ("latitudeOfFirstGridPointInDegrees", float(lat[0])),
            ("latitudeOfLastGridPointInDegrees", float(lat[-1])),
            ("longitudeOfFirstGridPointInDegrees", float(lon[0])),
            ("longitudeOfLastGridPointInDegrees", float(lon[-1])),
            ("iDirectionIncrementInDegrees", float(abs(lon[1] - lon[0]))),
            ("jDirectionIncrementInDegrees", float(abs(lat[1] - lat[0]))),
        ):
            eccodes.codes_set(message, key, value)
        eccodes.codes_set(message, "jScansPositively", int(lat[1] > lat[0]))
        eccodes.codes_set(message, "shortName", param)
        if level is not None:
            eccodes.codes_set(message, "level", int(level))
        eccodes.codes_set(message, "dataDate", int(f"{run:%Y%m%d}"))
        eccodes.codes_set(message, "dataTime", run.hour * 100)
        eccodes.codes_set(message, "packingType", "grid_ieee")
        eccodes.codes_set_values(message, np.asarray(values, np.float64).ravel())
        return eccodes.codes_get_message(message)
    finally:
        eccodes.codes_release(message)


def run_messages(
    run: pd.Timestamp, resolution: float, *, seed: int = 0, drop: Sequence[tuple] = (),
    wrong_grid: Optional[tuple] = None, message_run: Optional[pd.Timestamp] = None,
) -> list[tuple[dict, bytes]]:  # fmt: skip
    """(index keys, GRIB message) of every field of the run's step 0.

    Args:
      drop: (param, level or None) left out.
      wrong_grid: (param, level or None) written on a grid twice as coarse.
      message_run: the run time written inside the messages (default: ``run``).
    """
    lat, lon, fields = synthetic.make_open_data_fields(run, resolution, LEVELS, seed)
    for param, levtype in EXTRA_PARAMETERS:
        for level in LEVELS if levtype else (None,):
            fields[(param, level)] = np.full((lat.size, lon.size), 1.0 + (level or 0))
    messages = []
    for (param, level), values in fields.items():
        if (param, level) in drop:
            continue
        grid = (lat, lon, values)
        if (param, level) == wrong_grid:
            grid = (lat[::2], lon[::2], values[::2, ::2])
        keys = {
            "domain": "g", "date": f"{run:%Y%m%d}", "time": f"{run:%H}00", "expver": "0001",
            "class": "od", "type": "fc", "stream": stream_of(run), "step": "0",
            "levtype": "pl" if level is not None else "sfc", "param": param,
        }  # fmt: skip
        if level is not None:
            keys["levelist"] = str(level)
        messages.append((keys, encode(param, level, message_run or run, *grid)))
    return messages


def write_run(root: Path, run, resolution: float, **options) -> Path:
    """Writes the run's data file and index under ``root``; returns the data file."""
    run = pd.Timestamp(run)
    path = Path(root) / data_path(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    offset, lines, blobs = 0, [], []
    for keys, message in run_messages(run, resolution, **options):
        lines.append(json.dumps({**keys, "_offset": offset, "_length": len(message)}))
        blobs.append(message)
        offset += len(message)
    path.write_bytes(b"".join(blobs))
    path.with_suffix(".index").write_text("\n".join(lines) + "\n")
    return path


class _Handler(http.server.BaseHTTPRequestHandler):
    root: Path = Path(".")
    cut: dict[str, int] = {}  # path -> bytes sent before the connection is dropped
    requests: list[tuple[str, str, str]] = []  # (method, path, range header)

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        path = self.path.split("?")[0].lstrip("/")
        self.requests.append((self.command, path, self.headers.get("Range", "")))
        file = self.root / path
        if not path or not file.is_file():
            if not path and self.root.is_dir():  # the base address answers, like ECMWF's
                return self._send(200, {"Content-Type": "text/html"}, b"open data", body)
            return self.send_error(404)
        data = file.read_bytes()
        spans = _ranges(self.headers.get("Range", ""), len(data))
        if spans is None:
            return self._send(200, {"Accept-Ranges": "bytes"}, data, body, path)
        if not spans:
            return self.send_error(416)
        if len(spans) == 1:
            start, end = spans[0]
            headers = {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
            return self._send(206, headers, data[start : end + 1], body, path)
        parts = [
            f"--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Range: bytes {start}-{end}/{len(data)}\r\n\r\n".encode()
            + data[start : end + 1]
            + b"\r\n"
            for start, end in spans
        ]
        content = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
        headers = {"Content-Type": f"multipart/byteranges; boundary={BOUNDARY}"}
        self._send(206, headers, content, body, path)

    def _send(self, status: int, headers: dict, content: bytes, body: bool, path: str = ""):
        self.send_response(status)
        headers = {"Content-Type": "application/octet-stream", **headers}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if not body:
            return
        if path in self.cut:  # promise every byte, send some, hang up
            self.wfile.write(content[: self.cut[path]])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(content)


def _ranges(header: str, size: int) -> Optional[list[tuple[int, int]]]:
    """The satisfiable (start, end) byte ranges of a ``Range`` header; None without one."""
    if not header.startswith("bytes="):
        return None
    spans = []
    for item in header[len("bytes=") :].split(","):
        first, _, last = item.strip().partition("-")
        start, end = int(first), min(int(last) if last else size - 1, size - 1)
        if start < size:
            spans.append((start, end))
    return spans


@contextlib.contextmanager
def serving(root: Path, cut: Optional[dict[str, int]] = None) -> Iterator[tuple[str, list]]:
    """Serves ``root`` on 127.0.0.1; yields (base URL, the list of requests it records)."""
    requests: list = []
    attributes = {"root": Path(root), "cut": dict(cut or {}), "requests": requests}
    with gcs_emulator.serving(type("OpenData", (_Handler,), attributes)) as url:
        yield url, requests
