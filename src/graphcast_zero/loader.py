"""Training batches from time windows: sampled, split across processes and read ahead, with grain.

The windows are any random-access sequence of :class:`~graphcast_zero.train_loop.Window` (the
sliding windows of a dataset file, or windows read from an ERA5 store on demand). :class:`Batches`
turns them into the batches one process trains on: a seeded shuffle that changes every pass over
the windows, this process's share of every global batch, and windows read ahead in background
threads while the accelerator computes. Its position (:meth:`Batches.get_state`) is saved with a
checkpoint, so a resumed run draws exactly the batches the interrupted one would have.

The library is Google's grain (``grain`` on PyPI), made for exactly this in JAX training: a
``MapDataset`` over a random-access source gives a deterministic global shuffle reseeded per
epoch, process sharding by slicing (each host reads only its own windows), batching with our own
stacking function, a thread pool that prefetches elements, and an iterator whose state is a small
dict to checkpoint. It installs from wheels on Linux (x86-64, aarch64) and macOS (arm64) for
Python 3.10 (grain 0.2.13, the last release for 3.10) to 3.12 (0.2.18), and these calls behave
the same in both. Rejected: xbatcher slices arrays into batches but has no sampler state,
process sharding or prefetching (a thread pool would still be ours to write); dask schedules
task graphs, not an ordered, resumable stream of batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from graphcast_zero.schedules import Curriculum
from graphcast_zero.train_loop import Arrays, Window

MAX_THREADS = 8  # more reader threads than this only adds memory: each holds a window


def stack_windows(windows: Sequence[Window]) -> Window:
    """Windows stacked on the batch axis (each window has batch size 1)."""

    def stack(part: str) -> Arrays:
        first = getattr(windows[0], part)
        return {n: np.concatenate([getattr(w, part)[n] for w in windows]) for n in first}

    return Window(stack("inputs"), stack("targets"), stack("forcings"))


class Batches(Iterator[Window]):
    """This process's part of ``batches`` global batches of ``global_batch`` windows.

    Window ``k`` of the endless stream is window ``k mod len(windows)`` of that pass's shuffle;
    global batch ``i`` holds stream windows ``i * global_batch`` … ``(i + 1) * global_batch - 1``,
    and process ``p`` of ``P`` reads those whose position is ``p`` modulo ``P`` (its rows of the
    batch, in the order :func:`jax.make_array_from_process_local_data` expects).

    Args:
      windows: the windows to sample from.
      global_batch: windows per iteration over all processes; a multiple of ``process_count``.
      batches: how many batches to draw.
      seed: the shuffle's seed; None keeps the windows' order (validation).
      process_index, process_count: this process and how many share each batch.
      prefetch: batches read ahead in background threads (0: read when asked, in this thread).
    """

    def __init__(
        self,
        windows: Sequence[Window],
        global_batch: int,
        batches: int,
        *,
        seed: int | None = 0,
        process_index: int = 0,
        process_count: int = 1,
        prefetch: int = 2,
    ):
        import grain

        if not len(windows):
            raise ValueError("no windows to draw batches from")
        if global_batch % process_count:
            raise ValueError(f"{global_batch} windows do not split over {process_count} processes")
        dataset = grain.MapDataset.source(windows)
        if seed is not None:
            dataset = dataset.shuffle(seed=seed)
        wanted = batches * global_batch
        dataset = dataset.repeat(math.ceil(wanted / len(windows)))[:wanted]
        dataset = dataset[process_index::process_count]
        dataset = dataset.batch(global_batch // process_count, batch_fn=stack_windows)
        threads = min(prefetch, MAX_THREADS)
        options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch)
        self.length = batches
        self._iterator = iter(dataset.to_iter_dataset(options))

    def __len__(self) -> int:
        return self.length

    def __next__(self) -> Window:
        return next(self._iterator)

    def get_state(self) -> dict:
        """Where the stream stands: restoring it makes the next batch the one that was next."""
        return dict(self._iterator.get_state())

    def set_state(self, state: dict) -> None:
        """Continues from a position :meth:`get_state` returned on identically built batches."""
        self._iterator.set_state(dict(state))


class CurriculumBatches(Iterator[Window]):
    """The batches of a curriculum's phases one after the other, each phase with its own step
    count and shuffle (seed + phase index); a phase's batches are drawn when it starts.

    Args:
      curriculum: the phases (:class:`~graphcast_zero.schedules.Curriculum`).
      windows_for: the windows with a given step count.
      global_batch, process_index, process_count, prefetch: as for :class:`Batches`.
      seed: the first phase's shuffle seed.
      position: where an earlier run stopped (:meth:`get_state`), or None to start at the
        first phase's first batch.
    """

    def __init__(
        self,
        curriculum: Curriculum,
        windows_for: Callable[[int], Sequence[Window]],
        global_batch: int,
        *,
        seed: int = 0,
        process_index: int = 0,
        process_count: int = 1,
        prefetch: int = 2,
        position: dict | None = None,
    ):
        self.curriculum, self.windows_for = curriculum, windows_for
        self.options = dict(
            process_index=process_index, process_count=process_count, prefetch=prefetch
        )
        self.global_batch, self.seed = global_batch, seed
        self.phase = int(position["phase"]) if position else 0
        self.current = self._start(self.phase)
        if position:
            self.current.set_state(position["state"])

    def _start(self, index: int) -> Batches:
        phase = self.curriculum.phases[index]
        return Batches(
            self.windows_for(phase.steps), self.global_batch, phase.iterations,
            seed=self.seed + index, **self.options,
        )  # fmt: skip

    def __next__(self) -> Window:
        while True:
            try:
                return next(self.current)
            except StopIteration:
                if self.phase + 1 >= len(self.curriculum.phases):
                    raise
                self.phase += 1
                self.current = self._start(self.phase)

    def get_state(self) -> dict:
        """The phase and its batches' position: what :class:`CurriculumBatches` resumes from."""
        return {"phase": self.phase, "state": self.current.get_state()}
