"""fetch-data against a local GCS emulator and a local Hugging Face Hub: the real protocols, offline.

The fake bucket holds tiny files in both layouts: ``graphcast/...`` (newer) and top level (older,
with an outdated copy of the small checkpoint that must lose to the newer one).
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from graphcast_zero import catalog as cat
from graphcast_zero import fetch, remotes
from graphcast_zero.config import PUBLISHED_MODELS
from graphcast_zero.errors import FetchError, InputError
from graphcast_zero.paths import STATS_FILES, DataPaths

from .gcs_emulator import free_port, running_emulator, running_hub, upload

SMALL = PUBLISHED_MODELS["small"]
CHUNK = 64 * 2**10
DATASETS = {
    "source-era5_date-2022-01-01_res-1.0_levels-13_steps-04.nc": 100_000,
    "source-era5_date-2022-01-01_res-1.0_levels-13_steps-12.nc": 120_000,
    "source-era5_date-2022-01-01_res-0.25_levels-37_steps-04.nc": 3_000,
    "source-hres_date-2022-01-01_res-0.25_levels-13_steps-04.nc": 3_000,
    "source-fake_date-2000-01-01_res-6.0_levels-13_steps-04.nc": 2_000,
}


def blob(name: str, size: int) -> bytes:
    """Deterministic pseudo-random bytes, different for each name."""
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def bucket_files() -> dict[str, bytes]:
    """Logical file (``kind/name``) -> content, as the newer layout serves it."""
    files = {f"params/{m.file_name}": blob(m.file_name, 5_000) for m in PUBLISHED_MODELS.values()}
    files[f"params/{SMALL.file_name}"] = blob("small", 300_000)  # several chunks
    files.update({f"stats/{name}": blob(name, 4_000) for name in STATS_FILES})
    files.update({f"dataset/{name}": blob(name, size) for name, size in DATASETS.items()})
    return files


FILES = bucket_files()
BUNDLE = [
    f"params/{SMALL.file_name}",
    *(f"stats/{n}" for n in STATS_FILES),
    "dataset/source-era5_date-2022-01-01_res-1.0_levels-13_steps-04.nc",
]


@pytest.fixture(scope="module")
def endpoint():
    """The emulator with ``dm_graphcast`` in both layouts."""
    objects = {f"graphcast/{name}": content for name, content in FILES.items()}
    objects[f"params/{SMALL.file_name}"] = b"an outdated copy in the older layout"
    objects["dataset/source-era5_date-2022-01-01_res-1.0_levels-13_steps-01.nc"] = b"older only"
    objects["gencast/params/GenCast.npz"] = b"not GraphCast"
    with running_emulator() as url:
        upload(url, remotes.BUCKET, objects)
        yield url


def run(endpoint, data_dir: Path, **kwargs) -> fetch.FetchReport:
    kwargs = {"progress": False, "log": lambda line: None, "chunk_size": CHUNK, **kwargs}
    return fetch.fetch_data(data_dir=data_dir, endpoint=endpoint, **kwargs)


def statuses(report: fetch.FetchReport) -> dict[str, str]:
    return {r.entry.relative_path: r.status for r in report.files}


def assert_bundle_complete(root: Path) -> None:
    for name in BUNDLE:
        assert (root / name).read_bytes() == FILES[name], name
    assert not list(root.rglob("*.part"))


def test_listing_reads_both_layouts_and_marks_fits(endpoint, tmp_path):
    remote = remotes.GcsRemote(endpoint=endpoint)
    catalog = cat.Catalog.from_files(remote.list())
    assert catalog.params[SMALL.file_name].remote.name.startswith("graphcast/")
    assert catalog.params[SMALL.file_name].remote.checksums["md5"]
    assert set(catalog.datasets) == {
        *DATASETS,
        "source-era5_date-2022-01-01_res-1.0_levels-13_steps-01.nc",
    }
    lines = []
    report = run(endpoint, tmp_path, list_only=True, log=lines.append)
    assert report.listing in lines[0]
    hres = [line for line in report.listing.splitlines() if "source-hres" in line]
    assert hres[0].split()[:5] == ["dataset", "2.9", "KiB", "missing", "no"]
    assert hres[1].endswith(
        "res-0.25_levels-13_steps-04.nc: resolution 0.25° but the model needs 1°"
    )
    assert not report.files


def test_fetches_a_model_bundle_then_skips_it(endpoint, tmp_path):
    first = run(endpoint, tmp_path)
    assert statuses(first) == dict.fromkeys(BUNDLE, "downloaded")
    assert_bundle_complete(tmp_path)
    again = run(endpoint, tmp_path, workers=1)
    assert statuses(again) == dict.fromkeys(BUNDLE, "present")


def test_corrupt_or_truncated_local_files_are_fetched_again(endpoint, tmp_path):
    run(endpoint, tmp_path)
    stats, params = tmp_path / BUNDLE[1], tmp_path / BUNDLE[0]
    stats.write_bytes(bytes(stats.stat().st_size))  # same size, wrong content
    params.write_bytes(params.read_bytes()[:1000])
    report = run(endpoint, tmp_path)
    assert statuses(report)[BUNDLE[1]] == "downloaded"
    assert statuses(report)[BUNDLE[0]] == "downloaded"
    assert statuses(report)[BUNDLE[2]] == "present"
    assert_bundle_complete(tmp_path)


def _failing_after(remote, chunks: int, error: Exception):
    stream = remote.stream

    def failing(name, offset, size, chunk_size):
        for index, chunk in enumerate(stream(name, offset, size, chunk_size)):
            if index == chunks:
                raise error
            yield chunk

    remote.stream = failing
    return remote


def test_an_interrupted_download_leaves_no_final_file_and_resumes(endpoint, tmp_path):
    remote = _failing_after(remotes.GcsRemote(endpoint=endpoint), 2, ConnectionResetError("cut"))
    with pytest.raises(FetchError, match="interrupted.*run fetch-data again to resume"):
        run(endpoint, tmp_path, dataset="none", remote=remote, workers=1)
    final = tmp_path / BUNDLE[0]
    parts = list(final.parent.glob(".*.part"))
    assert not final.exists() and [p.stat().st_size for p in parts] == [2 * CHUNK]
    report = run(endpoint, tmp_path, dataset="none")
    assert statuses(report)[BUNDLE[0]] == "resumed"
    assert final.read_bytes() == FILES[BUNDLE[0]] and not list(final.parent.glob(".*.part"))


def test_a_killed_process_leaves_no_final_file_and_the_next_run_completes(endpoint, tmp_path):
    script = textwrap.dedent(f"""
        import os, signal
        from graphcast_zero import fetch, remotes
        stream = remotes.GcsRemote.stream
        def killing(self, name, offset, size, chunk_size):
            for index, chunk in enumerate(stream(self, name, offset, size, chunk_size)):
                if index == 3 and name.endswith(".npz"):
                    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup runs, like a power cut
                yield chunk
        remotes.GcsRemote.stream = killing
        fetch.fetch_data(data_dir={str(tmp_path)!r}, endpoint={endpoint!r}, progress=False,
                         chunk_size={CHUNK}, workers=1)
    """)
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert process.returncode == -9, process.stderr.decode()[-2000:]
    assert not (tmp_path / BUNDLE[0]).exists()
    assert list((tmp_path / "params").glob(".*.part"))
    run(endpoint, tmp_path)
    assert_bundle_complete(tmp_path)


def test_a_checksum_mismatch_is_detected_and_discarded(endpoint, tmp_path):
    remote = remotes.GcsRemote(endpoint=endpoint)
    stream = remote.stream

    def flipping(name, offset, size, chunk_size):
        for chunk in stream(name, offset, size, chunk_size):
            yield bytes([chunk[0] ^ 1]) + chunk[1:]

    remote.stream = flipping
    with pytest.raises(FetchError, match=r"checksum mismatch \(md5 .*the server lists"):
        run(endpoint, tmp_path, remote=remote, dataset="none", workers=1)
    assert not list((tmp_path / "params").iterdir())  # neither the final name nor a .part


def test_an_unreachable_endpoint_fails_fast_with_the_way_out(tmp_path):
    start = time.monotonic()
    with pytest.raises(FetchError) as error:
        run(f"http://127.0.0.1:{free_port()}", tmp_path)
    assert time.monotonic() - start < 10
    assert "cannot reach gs://dm_graphcast" in str(error.value)
    assert "--source demo" in str(error.value) and "--endpoint" in str(error.value)


def test_a_server_that_never_answers_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(remotes, "PROBE_READ_TIMEOUT", 1.0)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections, never replies
        start = time.monotonic()
        with pytest.raises(FetchError, match=r"cannot reach .*\(ReadTimeout\)"):
            run(f"http://127.0.0.1:{silent.getsockname()[1]}", tmp_path)
    assert time.monotonic() - start < 10


def test_an_endpoint_that_is_not_gcs_is_reported(tmp_path):
    with running_hub({}) as not_gcs, pytest.raises(FetchError, match="HTTP 404 listing the bucket"):
        run(not_gcs, tmp_path)


def test_path_escaping_names_are_refused(endpoint, tmp_path):
    with pytest.raises(FetchError, match="refused dataset name '../../evil.nc'"):
        run(endpoint, tmp_path, dataset="../../evil.nc")
    entry = cat.Entry("dataset", "../../evil.nc", cat.RemoteFile("dataset/../../evil.nc", 1))
    with pytest.raises(FetchError, match="would write outside"):
        fetch.safe_destination(DataPaths(tmp_path), entry)


def test_a_dataset_that_does_not_fit_is_explained(endpoint, tmp_path):
    name = "source-hres_date-2022-01-01_res-0.25_levels-13_steps-04.nc"
    with pytest.raises(InputError, match="does not fit model 'small': resolution 0.25°"):
        run(endpoint, tmp_path, dataset=name)


def test_disk_space_is_checked_before_downloading(tmp_path):
    with pytest.raises(FetchError, match=r"not enough disk space .*1024.0 TiB to download"):
        fetch.check_disk_space(DataPaths(tmp_path / "not-yet"), 2**50)
    fetch.check_disk_space(DataPaths(tmp_path), 2**10)


def test_autodl_proxy_file_is_parsed_not_executed(tmp_path):
    turbo = tmp_path / "network_turbo"
    turbo.write_text(
        "result=$(curl -s http://example.invalid) # must not run\n"
        'export http_proxy=http://172.20.0.113:12798 && export https_proxy="http://172.20.0.113:12798"\n'
        "export no_proxy=localhost,127.0.0.1\necho 'academic network enabled'\n"
    )
    settings = remotes.read_proxy_file(turbo)
    assert settings == {
        "http_proxy": "http://172.20.0.113:12798",
        "https_proxy": "http://172.20.0.113:12798",
        "no_proxy": "localhost,127.0.0.1",
    }
    environ = {}
    remotes.apply_proxies(settings, environ)
    assert environ["HTTPS_PROXY"] == environ["https_proxy"] == "http://172.20.0.113:12798"
    with pytest.raises(FetchError, match="only works on AutoDL"):
        remotes.read_proxy_file(tmp_path / "absent")


HF_REPOS = {
    ("datasets", remotes.HF_DATASET_REPO): {
        **{name: content for name, content in FILES.items() if not name.startswith("params/")},
        "stats/notes.txt": b"not LFS: checked with git's blob sha1",
        "dataset/../../escape.nc": b"must never be written",
    },
    **{
        ("models", repo): {m.file_name: FILES[f"params/{m.file_name}"], "README.md": b"card"}
        for repo, m in zip(remotes.HF_MODEL_REPOS, PUBLISHED_MODELS.values(), strict=True)
    },
}


def test_hugging_face_mirror_through_hf_endpoint(tmp_path, monkeypatch):
    with running_hub(HF_REPOS) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub)
        listing = run(None, tmp_path, source="hf", list_only=True)
        assert (
            "refused (would write outside the data folder): 'dataset/../../escape.nc'"
            in listing.listing
        )
        report = run(None, tmp_path, source="hf", steps=10)
        again = run(None, tmp_path, source="hf", steps=10)
    bundle = [*BUNDLE[:4], "dataset/source-era5_date-2022-01-01_res-1.0_levels-13_steps-12.nc"]
    assert statuses(report) == dict.fromkeys(bundle, "downloaded")
    assert statuses(again) == dict.fromkeys(bundle, "present")
    assert all((tmp_path / name).read_bytes() == FILES[name] for name in bundle)
    assert not (tmp_path.parent / "escape.nc").exists()


def test_hugging_face_checksums_resume_and_git_blobs(tmp_path):
    with running_hub(HF_REPOS) as hub:
        remote = remotes.HfRemote(hub)
        catalog = cat.Catalog.from_files(remote.list())
        notes = catalog.stats["notes.txt"]
        assert set(notes.remote.checksums) == {"git-sha1"}
        assert fetch.fetch_entry(remote, notes, DataPaths(tmp_path)).status == "downloaded"
        params = catalog.params[SMALL.file_name]
        assert set(params.remote.checksums) == {"sha256"}
        _failing_after(remote, 1, ConnectionResetError("cut"))
        with pytest.raises(FetchError, match="interrupted"):
            fetch.fetch_entry(remote, params, DataPaths(tmp_path), chunk_size=CHUNK)
        result = fetch.fetch_entry(_relisted(hub), params, DataPaths(tmp_path), chunk_size=CHUNK)
    assert result.status == "resumed" and result.fetched_bytes < params.remote.size
    assert result.path.read_bytes() == FILES[BUNDLE[0]]


def _relisted(hub: str) -> remotes.HfRemote:
    remote = remotes.HfRemote(hub)
    remote.list()  # learns the download URLs
    return remote


def test_unreachable_hugging_face_names_the_way_out(tmp_path):
    with pytest.raises(FetchError, match="cannot reach Hugging Face .*--source demo"):
        run(f"http://127.0.0.1:{free_port()}", tmp_path, source="hf")


def test_unknown_source_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="use gcs, hf, demo, era5 or ecmwf-open-data"):
        run(None, tmp_path, source="ftp")
