"""The grain loader: every window once per pass, process shards that add up to the global batch,
a position that resumes exactly, and a curriculum's phases in order."""

from __future__ import annotations

import numpy as np
import pytest

from graphcast_zero.loader import Batches, CurriculumBatches, stack_windows
from graphcast_zero.schedules import parse_steps_schedule
from graphcast_zero.train_loop import Window


def window(value: float, steps: int = 1) -> Window:
    """A window whose every array holds ``value`` (targets: ``steps`` frames)."""
    return Window(
        inputs={"x": np.full((1, 2, 1, 1, 1), value, np.float32)},
        targets={"x": np.full((1, steps, 1, 1, 1), value, np.float32)},
        forcings={"f": np.full((1, steps, 1, 1, 1), value, np.float32)},
    )


WINDOWS = [window(i) for i in range(6)]


def values(batch: Window) -> list[int]:
    return [int(v) for v in batch.inputs["x"][:, 0, 0, 0, 0]]


def test_stack_windows_concatenates_on_the_batch_axis():
    batch = stack_windows([window(1, steps=2), window(2, steps=2)])
    assert batch.targets["x"].shape == (2, 2, 1, 1, 1) and values(batch) == [1, 2]


def test_each_pass_draws_every_window_once_in_a_new_order():
    drawn = [values(b) for b in Batches(WINDOWS, 2, 6, seed=3)]
    first, second = sum(drawn[:3], []), sum(drawn[3:], [])
    assert sorted(first) == sorted(second) == list(range(6))
    assert first != second  # reshuffled (the seed is fixed, so this is not left to chance)
    assert [values(b) for b in Batches(WINDOWS, 2, 6, seed=3)] == drawn  # deterministic


def test_process_shards_add_up_to_the_global_batch():
    single = [values(b) for b in Batches(WINDOWS, 4, 3, seed=1)]
    shards = [
        [values(b) for b in Batches(WINDOWS, 4, 3, seed=1, process_index=p, process_count=2)]
        for p in (0, 1)
    ]
    for step, batch in enumerate(single):
        # Process p holds the stream positions p, p + 2 of the batch: rows 0, 2 and 1, 3.
        assert shards[0][step] == batch[0::2] and shards[1][step] == batch[1::2]


def test_validation_order_and_read_ahead_do_not_change_the_batches():
    in_order = [values(b) for b in Batches(WINDOWS, 2, 3, seed=None, prefetch=0)]
    assert in_order == [[0, 1], [2, 3], [4, 5]]
    ahead = [values(b) for b in Batches(WINDOWS, 2, 3, seed=None, prefetch=3)]
    assert ahead == in_order


def test_a_restored_position_continues_with_the_same_batches():
    batches = Batches(WINDOWS, 2, 8, seed=5)
    for _ in range(4):
        next(batches)
    position = batches.get_state()
    rest = [values(b) for b in batches]
    again = Batches(WINDOWS, 2, 8, seed=5)
    again.set_state(position)
    assert [values(b) for b in again] == rest and len(rest) == 4


def test_curriculum_phases_follow_each_other_and_resume_across_the_boundary():
    def windows_for(steps):
        return [window(10 * steps + i, steps) for i in range(3)]

    curriculum = parse_steps_schedule("1:2,2:3")
    batches = CurriculumBatches(curriculum, windows_for, 1, seed=0, prefetch=1)
    drawn = [next(batches) for _ in range(2)]
    position = batches.get_state()  # at the end of phase 0
    later = [next(batches) for _ in range(3)]
    assert [b.targets["x"].shape[1] for b in drawn + later] == [1, 1, 2, 2, 2]
    assert all(10 <= values(b)[0] < 20 for b in drawn) and all(values(b)[0] >= 20 for b in later)
    with pytest.raises(StopIteration):
        next(batches)
    resumed = CurriculumBatches(curriculum, windows_for, 1, seed=0, position=position)
    assert [values(next(resumed)) for _ in range(3)] == [values(b) for b in later]
