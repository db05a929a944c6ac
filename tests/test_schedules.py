"""The curriculum and learning-rate schedules, against values worked out by hand."""

from __future__ import annotations

import pytest

from graphcast_zero.errors import InputError
from graphcast_zero.schedules import Curriculum, LearningRate, Phase, parse_steps_schedule


def test_steps_schedule_text_round_trips():
    curriculum = parse_steps_schedule("1:1000, 2:300,12:300")
    assert curriculum == Curriculum((Phase(1, 1000), Phase(2, 300), Phase(12, 300)))
    assert curriculum.total == 1600 and curriculum.max_steps == 12
    assert curriculum.text() == "1:1000,2:300,12:300"


@pytest.mark.parametrize("text", ["", "1", "1:0", "0:5", "a:3", "1:3,", "1:-2"])
def test_bad_steps_schedules_name_the_option(text):
    with pytest.raises(InputError, match="--steps-schedule") as raised:
        parse_steps_schedule(text)
    assert "\n" not in str(raised.value)


def test_phase_at_finds_the_phase_of_each_iteration():
    curriculum = parse_steps_schedule("1:3,2:2")
    phases = [curriculum.phase_at(i) for i in range(7)]
    # Iterations 0-2 in phase 0 (starting at 0), 3-4 in phase 1 (starting at 3); past the end:
    # the last phase.
    assert phases == [(0, 0)] * 3 + [(1, 3)] * 4


def test_cosine_schedule_by_hand():
    rate = LearningRate(1.0, "cosine", warmup=2, final=0.0)
    # Warm-up 0 -> 1 over 2 iterations, then half a cosine over the remaining 4: cos(pi/2) = 0 at
    # the middle (iteration 4) gives 0.5, the end (iteration 6) gives the final rate.
    assert [rate.at(i, 6) for i in (0, 1, 2, 4, 6)] == pytest.approx([0, 0.5, 1, 0.5, 0])
    assert LearningRate(2.0, "cosine", final=1.0).at(3, 6) == pytest.approx(1.5)


def test_constant_schedule_with_warmup():
    rate = LearningRate(1e-3, "constant", warmup=4)
    assert [rate.at(i, 10) for i in (0, 2, 4, 9)] == pytest.approx([0, 5e-4, 1e-3, 1e-3])
    assert not rate.is_constant and LearningRate(1e-3).is_constant


@pytest.mark.parametrize(
    ("options", "option"),
    [
        (dict(schedule="linear"), "--lr-schedule"),
        (dict(warmup=-1), "--warmup-iterations"),
        (dict(final=2.0), "--final-learning-rate"),
    ],
)
def test_bad_learning_rate_options(options, option):
    with pytest.raises(InputError, match=option):
        LearningRate(1.0, **options)
