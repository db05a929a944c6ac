"""Local stand-ins for the remotes fetch-data talks to, for offline tests.

- :func:`running_emulator`: ``gcp-storage-emulator`` (the GCS JSON API) in a subprocess on a free
  127.0.0.1 port, in memory.
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


@contextlib.contextmanager
def running_emulator() -> Iterator[str]:
    """Starts the emulator; yields its endpoint URL (``http://127.0.0.1:PORT``)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gcp_storage_emulator",
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
    """Creates ``bucket`` on the emulator and uploads ``{object name: content}``."""
    import gcsfs.core

    fs = gcsfs.core.GCSFileSystem(token="anon", endpoint_url=endpoint, skip_instance_cache=True)
    fs.mkdir(bucket)
    fs.pipe({f"{bucket}/{name}": content for name, content in objects.items()})


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
def running_hub(repos: Mapping[tuple[str, str], Mapping[str, bytes]]) -> Iterator[str]:
    """Serves ``{(models|datasets, owner/name): {path: content}}``; yields the endpoint URL."""
    handler = type("Hub", (_HubHandler,), {"repos": repos})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
