"""Serves a SYNTHETIC ERA5 store on a local GCS emulator, to try `invoke hindcast` offline.

    .venv/bin/python scripts/serve_synthetic_era5.py            # ARCO layout, 3 days, port 8123

writes a store from the project's generator (``graphcast_zero.synthetic.write_era5_store``: smooth
analytic fields, not ERA5) in the ARCO-ERA5 layout (or ``--layout wb2``) on a 4° grid, starts
``gcp-storage-emulator`` on 127.0.0.1, uploads the store to the public store's own address and
waits until Ctrl-C. Point ``--store arco --endpoint http://127.0.0.1:8123`` (or ``wb2``) at it;
docs/hindcast.md has the whole walk-through. Needs the dev extras (``pip install -e ".[dev]"``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the emulator helpers live with the tests

from graphcast_zero import synthetic  # noqa: E402
from graphcast_zero.sources.layouts import KNOWN_LAYOUTS  # noqa: E402
from tests.gcs_emulator import running_emulator, upload_folder  # noqa: E402

DEFAULT_PORT = 8123


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", choices=sorted(KNOWN_LAYOUTS), default="arco")
    parser.add_argument("--start", default="2021-12-31T18", help="first time of the store")
    parser.add_argument("--days", type=float, default=3.0, help="days of data after --start")
    parser.add_argument("--resolution", type=float, default=4.0, help="grid spacing, degrees")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the emulator's port")
    options = parser.parse_args(argv)
    # `kill` stops it as Ctrl-C does: the emulator is stopped on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    layout = KNOWN_LAYOUTS[options.layout]
    hours = int(options.days * 24) + 1
    with tempfile.TemporaryDirectory(prefix="synthetic-era5-") as folder:
        print(f"Writing a SYNTHETIC {layout.title} store: {hours} h from {options.start}, "
              f"{options.resolution:g}° …", flush=True)  # fmt: skip
        store = synthetic.write_era5_store(
            Path(folder) / "store.zarr", layout, start=options.start, hours=hours,
            resolution=options.resolution,
        )  # fmt: skip
        with running_emulator(options.port) as endpoint:
            upload_folder(endpoint, layout.url, store)
            print(f"Serving {layout.url}\n  at --endpoint {endpoint} (Ctrl-C to stop)", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                print("Stopped.")
    return 0


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
