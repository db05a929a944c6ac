"""Makes docs/images/realtime_map_synthetic.png: the real-time path run offline, as the tests run it.

    JAX_PLATFORMS=cpu .venv/bin/python scripts/realtime_picture.py

Serves SYNTHETIC open-data files (the project's generator written as GRIB2 with their index
files, tests/open_data_server.py) on 127.0.0.1, builds today's dataset from them with
`fetch-data --source ecmwf-open-data` (the real ECMWF client), forecasts 24 hours with RANDOM
operational-shaped weights and draws 2 m temperature over Europe. Nothing in it is a real
analysis or a real forecast: it shows what the command writes. About a minute on two CPU cores.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests/open_data_server.py

from graphcast_zero import fetch, synthetic, workflow  # noqa: E402
from graphcast_zero.paths import DataPaths  # noqa: E402
from tests.open_data_server import serving, write_run  # noqa: E402
from tests.sources.test_open_data_fetch import write_operational_shaped_model  # noqa: E402

RESOLUTION = 1.0
PICTURE = ROOT / "docs" / "images" / "realtime_map_synthetic.png"
CAPTION = (
    "SYNTHETIC fields served as open data, RANDOM weights: what the task draws, not a forecast"
)


def add_caption(path: Path) -> None:
    """A band under the picture saying what it is, so it cannot pass for a real forecast."""
    from PIL import Image, ImageDraw

    with Image.open(path) as picture:
        width, height = picture.size
        framed = Image.new("RGB", (width, height + 24), "white")
        framed.paste(picture, (0, 0))
    ImageDraw.Draw(framed).text((6, height + 5), CAPTION, fill="firebrick")
    framed.save(path, optimize=True)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        init = pd.Timestamp.now("UTC").tz_convert(None).floor("6h")
        for run in (init - pd.Timedelta(hours=6), init):
            write_run(folder / "server", run, RESOLUTION)
        paths = DataPaths(folder / "data")
        with serving(folder / "server") as (url, _):
            options = fetch.OpenDataOptions(
                init="latest", steps=4, resolution=RESOLUTION, mirror=url
            )
            fetch.fetch_data(data_dir=paths, source="ecmwf-open-data", open_data=options)
        write_operational_shaped_model(paths, RESOLUTION)
        maps = workflow.MapOptions(lead_time="24h", region="30,74,-30,50")
        result = workflow.run_inference(paths, run_name="picture", maps=maps)
        PICTURE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.run_dir / "map_2m_temperature_24h.png", PICTURE)
    add_caption(PICTURE)
    print(f"{synthetic.SYNTHETIC}; written {PICTURE}")


if __name__ == "__main__":
    main()
