"""Memory plans: the ladder of candidates, the user's restrictions, the choice against a budget."""

from __future__ import annotations

import types

import pytest

from graphcast_zero import memory
from graphcast_zero.memory import MemoryPlan

GRID_025 = 721 * 1440  # 0.25° grid nodes
GRID_1 = 181 * 360  # 1° grid nodes


def test_chunks_hold_at_most_chunk_nodes_grid_nodes():
    assert memory.default_grid_chunks(GRID_1) == 1  # 65,160 nodes: one chunk
    assert memory.default_grid_chunks(GRID_025) == 16  # 1,038,240 / 65,536 = 15.8
    assert memory.default_grid_chunks(memory.CHUNK_NODES + 1) == 2


def test_inference_ladder_tries_the_whole_grid_then_chunks():
    assert memory.ladder(GRID_025, training=False) == [MemoryPlan(), MemoryPlan(16)]
    assert memory.ladder(GRID_1, training=False) == [MemoryPlan()]  # nothing to chunk


def test_training_ladder_adds_remat_cheapest_first():
    one_step = memory.ladder(GRID_025, training=True, loss_steps=1)
    assert one_step == [
        MemoryPlan(),
        MemoryPlan(16),
        MemoryPlan(16, remat_processor=1),
        MemoryPlan(16, remat_processor=4),
    ]
    twelve = memory.ladder(GRID_025, training=True, loss_steps=12)
    assert twelve == [
        MemoryPlan(),
        MemoryPlan(remat_steps=True),
        MemoryPlan(16, remat_steps=True),
        MemoryPlan(16, remat_processor=1, remat_steps=True),
        MemoryPlan(16, remat_processor=4, remat_steps=True),
    ]


def test_restrict_keeps_what_the_user_fixed():
    ladder = memory.ladder(GRID_025, training=True, loss_steps=12)
    # Processor remat: each step, or nested groups where the ladder has them.
    assert memory.restrict(ladder, grid_chunks=4, remat="all") == [
        MemoryPlan(4, 1, True),
        MemoryPlan(4, 4, True),
    ]
    # A fixed remat leaves the chunk counts to choose from, duplicates merged.
    assert memory.restrict(ladder, remat="off") == [MemoryPlan(), MemoryPlan(16)]
    assert memory.restrict(ladder, grid_chunks=1) == [
        MemoryPlan(),
        MemoryPlan(remat_steps=True),
        MemoryPlan(remat_processor=1, remat_steps=True),
        MemoryPlan(remat_processor=4, remat_steps=True),
    ]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(remat="sometimes"), "remat must be one of auto, off, steps, processor, all"),
        (dict(grid_chunks=0), "grid chunks must be a whole number ≥ 1, not 0"),
    ],
)
def test_restrict_names_bad_choices(kwargs, message):
    with pytest.raises(ValueError, match=message):
        memory.restrict([MemoryPlan()], **kwargs)


def test_a_plan_needs_at_least_one_chunk_and_no_negative_group():
    with pytest.raises(ValueError, match="grid_chunks must be a whole number ≥ 1, not 0"):
        MemoryPlan(grid_chunks=0)
    with pytest.raises(ValueError, match="remat_processor must be a whole number ≥ 0, not -1"):
        MemoryPlan(remat_processor=-1)


def test_choose_takes_the_first_plan_that_fits():
    sizes = {MemoryPlan(): 30, MemoryPlan(16): 12, MemoryPlan(16, 1): 8}
    measured = []

    def measure(plan):
        measured.append(plan)
        return sizes[plan]

    choice = memory.choose(list(sizes), measure, budget=20)
    assert choice.plan == MemoryPlan(16)
    assert choice.how == "fits" and choice.estimated_bytes == 12 and choice.budget_bytes == 20
    assert measured == [MemoryPlan(), MemoryPlan(16)]  # the leaner third is never compiled
    record = choice.as_json()
    assert record["grid_chunks"] == 16 and record["how_chosen"] == "fits"
    assert [t["estimated_device_bytes"] for t in record["tried"]] == [30, 12]


def test_choose_falls_back_to_the_leanest_when_nothing_fits():
    choice = memory.choose(
        [MemoryPlan(), MemoryPlan(4)], {MemoryPlan(): 9, MemoryPlan(4): 7}.get, 5
    )
    assert choice.plan == MemoryPlan(4) and choice.how == "nothing fits"


def test_choose_measures_nothing_without_a_choice_or_a_budget():
    def measure(plan):
        raise AssertionError("compiled although there was nothing to choose")

    assert memory.choose([MemoryPlan(2)], measure, 10).how == "given"
    assert memory.choose([MemoryPlan(), MemoryPlan(2)], measure, None).how == "unknown budget"


def test_memory_is_arguments_outputs_and_temporaries_less_aliases():
    stats = types.SimpleNamespace(
        argument_size_in_bytes=100,
        output_size_in_bytes=20,
        temp_size_in_bytes=300,
        alias_size_in_bytes=20,
    )
    assert memory.memory_bytes(stats) == 400


def test_available_host_memory_is_read_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  4000 kB\nMemFree:  1000 kB\nMemAvailable:  3000 kB\n")
    assert memory.available_host_bytes(str(meminfo)) == 3000 * 1024
    assert memory.available_host_bytes(str(tmp_path / "missing")) is None


def test_a_cpu_has_a_budget():
    import jax

    assert memory.device_budget(jax.devices("cpu")[0]) > 0
