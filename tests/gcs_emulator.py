"""Local stand-ins for the remotes fetch-data talks to, for offline tests.

- :func:`running_emulator`: ``gcp-storage-emulator`` (the GCS JSON API) in a subprocess on a free
  127.0.0.1 port, in memory.
- :func:`counting_proxy`: a forwarder in front of the emulator that records every request (to
  count the chunks a reader fetches) and can refuse chosen objects.
- :func:`running_hub`: a tiny Hugging Face Hub: the tree API (``/api/{models|datasets}/{repo}/
  tree/{revision}/{path}``, paginated with ``Link: rel="next"``) and ``resolve`` downloads with
  ``Range`` support, in a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Optional

# gcsfs's package-level class would first probe the bucket type over gRPC (60 s per bucket
# against the emulator); graphcast_zero.fetch uses the plain class, this keeps helpers safe too.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gcp-storage-emulator exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"gcp-storage-emulator did not open port {port} in {timeout} s")


# The emulator serves one request at a time with the standard library's listen backlog of 5:
# a client reading or writing a Zarr store (many chunk objects at once) overflowed it, and each
# dropped connection waited a second or more before its retry. A longer queue keeps them waiting
# in line instead. In memory nothing reads back the metadata index the emulator rewrites as JSON
# after every upload (quadratic in the object count), so it is not written.
_EMULATOR_MAIN = """
import http.server
import sys
from gcp_storage_emulator import storage
from gcp_storage_emulator.__main__ import main
http.server.HTTPServer.request_queue_size = 256
storage.Storage._write_config_to_file = lambda self: None
main(sys.argv[1:])
"""


@contextlib.contextmanager
def running_emulator(port: Optional[int] = None) -> Iterator[str]:
    """Starts the emulator (on ``port``, default a free one); yields its endpoint URL
    (``http://127.0.0.1:PORT``)."""
    port = port or free_port()
    command = [
        sys.executable,
        "-c",
        _EMULATOR_MAIN,
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--in-memory",
        "--quiet",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def upload(endpoint: str, bucket: str, objects: Mapping[str, bytes]) -> None:
    """Creates ``bucket`` on the emulator (if needed) and uploads ``{object name: content}``."""
    import gcsfs.core

    fs = gcsfs.core.GCSFileSystem(token="anon", endpoint_url=endpoint, skip_instance_cache=True)
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    fs.pipe({f"{bucket}/{name}": content for name, content in objects.items()})


def upload_folder(endpoint: str, url: str, folder: Path) -> None:
    """Uploads every file under ``folder`` (a Zarr store) to ``gs://bucket/prefix`` on the emulator."""
    bucket, _, prefix = url.removeprefix("gs://").partition("/")
    files = (p for p in Path(folder).rglob("*") if p.is_file())
    upload(
        endpoint,
        bucket,
        {f"{prefix}/{p.relative_to(folder).as_posix()}": p.read_bytes() for p in files},
    )


class _HubHandler(http.server.BaseHTTPRequestHandler):
    repos: Mapping[tuple[str, str], Mapping[str, bytes]] = {}  # (models|datasets, repo) -> files
    page_size = 2

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        if path.startswith("/api/"):
            return self._tree(path, urllib.parse.parse_qs(url.query))
        return self._resolve(path)

    def _tree(self, path: str, query: dict) -> None:
        _, _, repo_type, owner, name, _, _revision, *folder = path.split("/")
        files = self.repos.get((repo_type, f"{owner}/{name}"))
        if files is None:
            return self.send_error(404)
        prefix = "/".join(folder)
        # Everything under the folder (the real Hub lists one level; the client must cope with both).
        entries = [
            _tree_entry(p, data)
            for p, data in sorted(files.items())
            if p.startswith(f"{prefix}/") or not prefix
        ]
        start = int(query.get("cursor", ["0"])[0])
        page = entries[start : start + self.page_size]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if start + self.page_size < len(entries):
            next_url = f"http://{self.headers['Host']}{path}?cursor={start + self.page_size}"
            self.send_header("Link", f'<{next_url}>; rel="next"')
        body = json.dumps(page).encode()
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _resolve(self, path: str) -> None:
        parts = path.strip("/").split("/")
        repo_type = "datasets" if parts[0] == "datasets" else "models"
        parts = parts[1:] if repo_type == "datasets" else parts
        repo, file_path = "/".join(parts[:2]), "/".join(parts[4:])
        data = self.repos.get((repo_type, repo), {}).get(file_path)
        if data is None or parts[2] != "resolve":
            return self.send_error(404)
        start = 0
        if self.headers.get("Range", "").startswith("bytes="):
            start = int(self.headers["Range"][6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


def _tree_entry(path: str, data: bytes) -> dict:
    """A tree entry as the Hub returns it: LFS files carry the content's sha256."""
    git_oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    entry = {"type": "file", "oid": git_oid, "size": len(data), "path": path}
    if path.endswith((".nc", ".npz")):
        entry["lfs"] = {
            "oid": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "pointerSize": 134,
        }
    return entry


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Runs ``handler`` on a free 127.0.0.1 port in a thread; yields its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def running_hub(repos: Mapping[tuple[str, str], Mapping[str, bytes]]) -> Iterator[str]:
    """Serves ``{(models|datasets, owner/name): {path: content}}``; yields the endpoint URL."""
    with serving(type("Hub", (_HubHandler,), {"repos": repos})) as url:
        yield url


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    target = ""
    seen: list = []
    refuse: Mapping[str, int] = {}  # object-name suffix -> how many requests to refuse with 403

    def log_message(self, *args) -> None:
        pass

    def _forward(self, method: str) -> None:
        import requests

        name = urllib.parse.unquote(self.path.split("?")[0])
        self.seen.append((method, name))
        for suffix, count in self.refuse.items():
            if name.endswith(suffix) and count:
                self.refuse[suffix] = count - 1
                return self.send_error(403)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host",)}
        answer = requests.request(method, self.target + self.path, data=body, headers=headers)
        self.send_response(answer.status_code)
        for key, value in answer.headers.items():
            if key.lower() not in (
                "content-length",
                "transfer-encoding",
                "connection",
                "content-encoding",
            ):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def do_GET(self) -> None:  # noqa: N802
        self._forward("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._forward("POST")


@contextlib.contextmanager
def counting_proxy(target: str, refuse: Optional[dict] = None) -> Iterator[tuple[str, list]]:
    """Forwards to ``target``; yields (its URL, the list of (method, path) it saw).

    Args:
      target: the emulator's URL.
      refuse: object-name suffix -> how many of its requests to answer with 403 first.
    """
    seen: list = []
    handler = type(
        "Proxy", (_ProxyHandler,), {"target": target, "seen": seen, "refuse": dict(refuse or {})}
    )
    with serving(handler) as url:
        yield url, seen
