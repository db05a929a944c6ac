"""How a GraphCast step trades device memory for work, and choosing that for a device.

None of these choices changes the maths (only the order of some float32 sums); they decide how
much of a step is alive at once:

- grid chunks: the encoder (grid→mesh) and decoder (mesh→grid) run over chunks of grid nodes
  one after another (``model.grid_chunks``), each recomputed in the backward pass;
- processor remat: each message step on the mesh is recomputed in the backward pass;
- step remat: a loss over several autoregressive steps keeps each step's network output and
  recomputes the steps one at a time in the backward pass (``trajectory``).

Each costs arithmetic (docs/memory.md), so ``choose`` takes the first plan of a ladder, cheapest
first, whose compiled program fits the device: XLA's own buffer assignment
(``compiled.memory_analysis()``) against the device's memory. ``rollout.choose_memory_plan`` and
``train_loop.choose_memory_plan`` compile the candidates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Optional

# Grid nodes per chunk: at 0.25° (1,038,240 nodes) 16 chunks; at 1° (65,160) none are needed.
# Smaller chunks saved little more in XLA's count for an H100 (a forecast step 6.05 GiB with 8,
# 16 or 32 chunks, a training step 26.2 GiB with 16 and 26.0 with 64): past this size the mesh
# side and the stored grid latents dominate.
CHUNK_NODES = 2**16
# Of the memory the device's allocator reports, what a plan may fill: XLA's count is of
# buffers, and the allocator loses some memory to fragmentation.
USABLE_FRACTION = 0.92
# Nested processor remat: groups of this many message steps (√16, fewest latents kept for 16).
PROCESSOR_REMAT_GROUP = 4
REMAT_CHOICES = ("auto", "off", "steps", "processor", "all")


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """How a step is laid out in memory.

    Attributes:
      grid_chunks: the encoder and decoder run over this many chunks of grid nodes (1: the
        whole grid at once, the fastest when it fits).
      remat_processor: 0 keeps the processor's activations for the backward pass; 1 recomputes
        each message step there, keeping the mesh latents between steps (one more processor
        forward pass); a larger number also recomputes groups of that many steps, keeping the
        latents only between groups and, during one group's backward pass, between its steps
        (two more). Training only; forecasts are unaffected.
      remat_steps: a training loss over several steps keeps each step's new frame only and
        recomputes one step at a time in the backward pass.
    """

    grid_chunks: int = 1
    remat_processor: int = 0
    remat_steps: bool = False

    def __post_init__(self):
        if not isinstance(self.grid_chunks, int) or self.grid_chunks < 1:
            raise ValueError(f"grid_chunks must be a whole number ≥ 1, not {self.grid_chunks!r}")
        if not isinstance(self.remat_processor, int) or self.remat_processor < 0:
            raise ValueError(
                f"remat_processor must be a whole number ≥ 0, not {self.remat_processor!r}"
            )

    @property
    def chunked(self) -> bool:
        return self.grid_chunks > 1


# The whole grid at once, nothing recomputed: the fastest, and the default.
DEFAULT_PLAN = MemoryPlan()


@dataclasses.dataclass(frozen=True)
class MemoryOptions:
    """What the user fixed of a plan (``--chunks``, ``--remat``); the rest is chosen.

    Attributes:
      grid_chunks: chunks of grid nodes (0: the fewest that fit).
      remat: ``auto`` (the cheapest that fits), ``off``, ``steps``, ``processor`` or ``all``.
    """

    grid_chunks: int = 0
    remat: str = "auto"

    def check(self) -> None:
        """Raises ``InputError`` naming the option that is out of range."""
        from graphcast_zero.errors import InputError

        if self.grid_chunks < 0:
            raise InputError(f"--chunks must be 0 (choose) or more, not {self.grid_chunks}")
        if self.remat not in REMAT_CHOICES:
            raise InputError(
                f"--remat must be one of {', '.join(REMAT_CHOICES)}, not {self.remat!r}"
            )


def default_grid_chunks(num_grid_nodes: int) -> int:
    """Chunks of at most ``CHUNK_NODES`` grid nodes (1 when the grid has no more)."""
    return max(1, -(-num_grid_nodes // CHUNK_NODES))


def ladder(num_grid_nodes: int, training: bool, loss_steps: int = 1) -> list[MemoryPlan]:
    """The plans to try, cheapest in arithmetic first, each leaner than the one before.

    Args:
      num_grid_nodes: grid nodes of the grid (sets the chunk count).
      training: whether the program takes gradients (remat only matters then).
      loss_steps: autoregressive steps in the training loss.
    """
    chunks = default_grid_chunks(num_grid_nodes)
    if not training:
        return _distinct([MemoryPlan(), MemoryPlan(chunks)])
    several = loss_steps > 1
    return _distinct(
        [
            MemoryPlan(),
            MemoryPlan(remat_steps=several),
            MemoryPlan(chunks, remat_steps=several),
            MemoryPlan(chunks, remat_processor=1, remat_steps=several),
            MemoryPlan(chunks, remat_processor=PROCESSOR_REMAT_GROUP, remat_steps=several),
        ]
    )


def _distinct(plans: list[MemoryPlan]) -> list[MemoryPlan]:
    return list(dict.fromkeys(plans))


def restrict(
    plans: Sequence[MemoryPlan], grid_chunks: Optional[int] = None, remat: str = "auto"
) -> list[MemoryPlan]:
    """The plans that keep what the user fixed: a chunk count, and/or a remat choice.

    Args:
      plans: a ``ladder``.
      grid_chunks: a chunk count, or None (0 from the command line) to choose.
      remat: ``auto``, ``off``, ``steps``, ``processor`` or ``all`` (steps and processor).

    Raises:
      ValueError: for an unknown ``remat`` or a negative chunk count.
    """
    if remat not in REMAT_CHOICES:
        raise ValueError(f"remat must be one of {', '.join(REMAT_CHOICES)}, not {remat!r}")
    if grid_chunks is not None and grid_chunks < 1:
        raise ValueError(f"grid chunks must be a whole number ≥ 1, not {grid_chunks}")
    kept = []
    for plan in plans:
        if grid_chunks is not None:
            plan = dataclasses.replace(plan, grid_chunks=grid_chunks)
        if remat != "auto":
            processor = (plan.remat_processor or 1) if remat in ("processor", "all") else 0
            plan = dataclasses.replace(
                plan, remat_processor=processor, remat_steps=remat in ("steps", "all")
            )
        kept.append(plan)
    return _distinct(kept)


def memory_bytes(stats) -> int:
    """Device bytes a compiled program needs at once: arguments + outputs + temporaries −
    aliased, from XLA's buffer assignment (``compiled.memory_analysis()``)."""
    return (
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
    )


def compiled_bytes(compiled) -> int:
    """``memory_bytes`` of a compiled program."""
    return memory_bytes(compiled.memory_analysis())


def device_budget(device=None) -> Optional[int]:
    """Bytes a program may use on ``device`` (default: this process's first device), or None if
    unknown.

    Accelerators: ``USABLE_FRACTION`` of what JAX's allocator may hand out (``bytes_limit``:
    75% of the card unless ``XLA_PYTHON_CLIENT_MEM_FRACTION`` says otherwise). CPUs: of the
    memory the system has available now (``MemAvailable``).
    """
    import jax

    device = device or jax.local_devices()[0]  # another process's devices report nothing
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"] * USABLE_FRACTION)
    available = available_host_bytes()
    return None if available is None else int(available * USABLE_FRACTION)


def available_host_bytes(meminfo_path: str = "/proc/meminfo") -> Optional[int]:
    """The memory Linux says is available to new work (``MemAvailable``), or None."""
    try:
        with open(meminfo_path) as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@dataclasses.dataclass(frozen=True)
class Choice:
    """The plan chosen, and why.

    Attributes:
      plan: the plan.
      how: ``given`` (one candidate: nothing to measure), ``fits`` (the first candidate whose
        estimate fit), ``nothing fits`` (the leanest candidate, which may fail to allocate) or
        ``unknown budget`` (the device reports no memory size: the first candidate).
      estimated_bytes: XLA's count for the plan's program, when measured.
      budget_bytes: what it was measured against.
      tried: per candidate tried, its plan and estimate.
    """

    plan: MemoryPlan
    how: str
    estimated_bytes: Optional[int] = None
    budget_bytes: Optional[int] = None
    tried: tuple = ()

    def as_json(self) -> dict:
        """For run.json / training.json."""
        return {
            **dataclasses.asdict(self.plan),
            "how_chosen": self.how,
            "estimated_device_bytes": self.estimated_bytes,
            "budget_bytes": self.budget_bytes,
            "tried": [
                {**dataclasses.asdict(p), "estimated_device_bytes": b} for p, b in self.tried
            ],
        }


def choose(
    candidates: Sequence[MemoryPlan],
    measure: Callable[[MemoryPlan], int],
    budget: Optional[float],
    measure_single: bool = False,
) -> Choice:
    """The first candidate whose program fits ``budget`` bytes.

    Args:
      candidates: plans, cheapest first (``ladder``/``restrict``).
      measure: a plan's device bytes (usually ``compiled_bytes`` of its compiled program).
      budget: the device's usable bytes (``device_budget``), or None when unknown.
      measure_single: measure a lone candidate too (otherwise it is taken as given).
    """
    if len(candidates) == 1 and not measure_single:
        return Choice(candidates[0], "given")
    if budget is None:
        return Choice(candidates[0], "unknown budget")
    tried = []
    for plan in candidates:
        estimate = measure(plan)
        tried.append((plan, estimate))
        if estimate <= budget:
            return Choice(plan, "fits", estimate, budget, tuple(tried))
    return Choice(candidates[-1], "nothing fits", tried[-1][1], budget, tuple(tried))


def agree_across_processes(choice: Choice) -> Choice:
    """Process 0's choice, on every process of a multi-process job: processes may see different
    free memory, and the job must run one program."""
    import numpy as np
    from jax.experimental import multihost_utils

    plan = choice.plan
    fields = np.array([plan.grid_chunks, plan.remat_processor, int(plan.remat_steps)], np.int64)
    first = multihost_utils.broadcast_one_to_all(fields)
    agreed = MemoryPlan(int(first[0]), int(first[1]), bool(first[2]))
    return choice if agreed == plan else Choice(agreed, "process 0's choice")
