"""The bucket catalog: name parsing, both layouts, the fit rule and the listing table."""

from __future__ import annotations

import pytest

from graphcast_zero import catalog as cat
from graphcast_zero.config import DEMO_MODEL, PUBLISHED_MODELS
from graphcast_zero.errors import InputError

SMALL, FULL, OPERATIONAL = (PUBLISHED_MODELS[k] for k in ("small", "full", "operational"))


def dataset(source="era5", res="1.0", levels=13, steps=4, date="2022-01-01") -> str:
    return f"source-{source}_date-{date}_res-{res}_levels-{levels}_steps-{steps:02d}.nc"


def remote(name: str, size: int = 10) -> cat.RemoteFile:
    return cat.RemoteFile(name, size, {"md5": "x"})


def test_parses_bucket_dataset_names():
    parsed = cat.parse_dataset_name("source-era5_date-2022-01-01_res-0.25_levels-37_steps-12.nc")
    assert (parsed.source, parsed.date, parsed.resolution, parsed.levels, parsed.steps) == (
        "era5",
        "2022-01-01",
        0.25,
        37,
        12,
    )
    assert cat.parse_dataset_name("source-era5_date-2022-01-01_res-1.0_levels-13.nc") is None
    assert cat.parse_dataset_name("README.md") is None


@pytest.mark.parametrize(
    "model, name, reason",
    [
        (SMALL, dataset(), None),
        (SMALL, dataset(res="0.25"), "resolution 0.25° but the model needs 1°"),
        (SMALL, dataset(levels=37), "37 levels but the model needs 13"),
        (SMALL, dataset(source="hres"), "source hres but precipitation is an input"),
        (FULL, dataset(res="0.25", levels=37), None),
        (FULL, dataset(res="0.25", levels=13), "13 levels but the model needs 37"),
        (OPERATIONAL, dataset(source="hres", res="0.25"), None),
        (OPERATIONAL, dataset(source="era5", res="0.25"), "precipitation is output only"),
        (OPERATIONAL, dataset(source="fake", res="0.25"), None),
        (DEMO_MODEL, dataset(source="fake", res="4.0"), None),  # resolution 0 fits any grid
    ],
)
def test_fit_rule_and_its_reasons(model, name, reason):
    misfit = cat.dataset_misfit(model, cat.parse_dataset_name(name))
    assert misfit is None if reason is None else reason in misfit


def test_too_few_steps_is_a_misfit():
    assert cat.dataset_misfit(SMALL, cat.parse_dataset_name(dataset(steps=4)), steps=12) == (
        "4 steps but 12 were asked for"
    )


def test_newer_layout_wins_and_older_only_files_are_kept():
    files = [
        remote(f"params/{SMALL.file_name}", 1),
        remote(f"graphcast/params/{SMALL.file_name}", 2),
        remote("stats/mean_by_level.nc", 3),
        remote(f"dataset/{dataset(steps=1)}", 4),
        remote("gencast/params/other.npz", 5),  # not a GraphCast file: ignored
        remote("LICENSE", 6),
    ]
    catalog = cat.Catalog.from_files(files)
    assert catalog.params[SMALL.file_name].remote.name == f"graphcast/params/{SMALL.file_name}"
    assert catalog.stats["mean_by_level.nc"].remote.size == 3
    assert list(catalog.datasets) == [dataset(steps=1)]
    assert catalog.entry("dataset", dataset(steps=1)).relative_path == f"dataset/{dataset(steps=1)}"
    assert catalog.missing_stats() == ["diffs_stddev_by_level.nc", "stddev_by_level.nc"]


@pytest.mark.parametrize(
    "name",
    [
        "graphcast/dataset/../../evil.nc",
        "dataset/sub/x.nc",
        "stats/..",
        "dataset/a\\b.nc",
        "params/C:evil.npz",
    ],
)
def test_names_that_could_escape_the_data_folder_are_refused(name):
    catalog = cat.Catalog.from_files([remote(name)])
    assert catalog.refused == (name,)
    assert not (catalog.params or catalog.stats or catalog.datasets)


def test_choose_dataset_prefers_real_data_and_the_fewest_sufficient_steps():
    names = [
        dataset(steps=1),
        dataset(steps=4),
        dataset(steps=12),
        dataset(steps=40),
        dataset(source="fake", steps=4),
        dataset(source="hres", res="0.25"),
        dataset(res="0.25", levels=37, steps=12),
    ]
    catalog = cat.Catalog.from_files(remote(f"dataset/{n}") for n in names)
    assert catalog.choose_dataset(SMALL).file_name == dataset(steps=cat.DEFAULT_STEPS)
    assert catalog.choose_dataset(SMALL, steps=10).file_name == dataset(steps=12)
    assert catalog.choose_dataset(SMALL, steps=1).file_name == dataset(steps=1)
    assert catalog.choose_dataset(OPERATIONAL).file_name == dataset(source="hres", res="0.25")
    assert catalog.choose_dataset(FULL).file_name == dataset(res="0.25", levels=37, steps=12)
    with pytest.raises(InputError, match="has 41 steps .*the most is 40"):
        catalog.choose_dataset(SMALL, steps=41)


def test_choose_dataset_explains_when_nothing_fits():
    catalog = cat.Catalog.from_files([remote(f"dataset/{dataset(res='0.25')}")])
    with pytest.raises(
        InputError, match=r"fits model 'small' .*resolution 0.25° but the model needs 1°"
    ):
        catalog.choose_dataset(SMALL)


def test_listing_shows_sizes_local_state_and_fit_reasons():
    files = [
        remote(f"graphcast/params/{SMALL.file_name}", 150 * 2**20),
        remote("graphcast/stats/mean_by_level.nc", 5 * 2**10),
        remote(f"graphcast/dataset/{dataset()}", 2**30),
        remote(f"dataset/{dataset(res='0.25')}", 3 * 2**30),
        remote("dataset/../x.nc"),
    ]
    table = cat.format_listing(
        cat.Catalog.from_files(files), SMALL, {f"dataset/{dataset()}": "verified"}
    )
    rows = {line.split("  ")[-1]: line.split() for line in table.splitlines()[1:8]}
    assert rows[SMALL.file_name][:5] == ["params", "150.0", "MiB", "-", "yes"]
    assert rows["mean_by_level.nc"][:5] == ["stats", "5.0", "KiB", "-", "yes"]
    assert rows[dataset()][:9] == [
        "dataset",
        "1.0",
        "GiB",
        "verified",
        "yes",
        "era5",
        "1.0",
        "13",
        "4",
    ]
    assert rows[dataset(res="0.25")][3:5] == ["-", "no"]
    assert f"  {dataset(res='0.25')}: resolution 0.25° but the model needs 1°" in table.splitlines()
    assert (
        table.splitlines()[-1] == "refused (would write outside the data folder): 'dataset/../x.nc'"
    )


def test_unknown_model_names_the_choices():
    with pytest.raises(InputError, match="small, full, operational"):
        cat.model_by_key("huge")
    assert cat.model_by_key("demo") is DEMO_MODEL


def test_human_size():
    assert [cat.human_size(n) for n in (10, 1536, 3 * 2**30)] == ["10 B", "1.5 KiB", "3.0 GiB"]
