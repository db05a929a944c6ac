"""The optimiser state on disk, so a resumed training run continues its moments and count.

The state's leaves are stored in tree order with the iteration count (``.npz``, no pickle); the
tree's structure comes back from the optimiser that reads it. This module sits at the edge, beside
the workflow: the training loop itself (:mod:`graphcast_zero.train_loop`) never opens files.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from graphcast_zero.atomic import atomic_path
from graphcast_zero.errors import InputError

# How to go on when the saved state cannot continue: the weights can, with fresh moments.
RESET_HINT = "pass --reset-optimizer to continue the weights with fresh optimiser moments"


def save_optimizer_state(opt_state, iterations: int, path: Path) -> Path:
    """Writes the optimiser state's leaves and the iteration count (``.npz``, no pickle)."""
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(opt_state)]
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(
                handle,
                iterations=np.int64(iterations),
                **{f"leaf_{i}": v for i, v in enumerate(leaves)},
            )
    return path


def load_optimizer_state(path: Path, template) -> tuple[Any, int]:
    """Restores a state saved by :func:`save_optimizer_state` into ``template``'s structure.

    Args:
      path: the saved state.
      template: a state of the optimiser and model that will continue (``optimizer.init``).

    Returns:
      (the saved state in ``template``'s structure, the iterations it has done).

    Raises:
      InputError: the file is missing or unreadable, or it does not fit ``template`` (another
        optimiser or model): the message says what differs.
    """
    leaves, treedef = jax.tree.flatten(template)
    if not path.is_file():
        raise InputError(f"no optimizer state {path} to resume: {RESET_HINT}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            stored = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise InputError(
            f"optimizer state {path} cannot be read ({type(error).__name__}): {RESET_HINT}"
        ) from None
    saved = [stored.get(f"leaf_{i}") for i in range(len(leaves))]
    count = sum(name.startswith("leaf_") for name in stored)
    if count != len(leaves) or any(leaf is None for leaf in saved) or "iterations" not in stored:
        raise InputError(
            f"optimizer state {path} holds {count} arrays but this optimiser and model need "
            f"{len(leaves)} (another optimiser or model): {RESET_HINT}"
        )
    for index, (ours, theirs) in enumerate(zip(saved, leaves, strict=True)):
        if np.shape(ours) != np.shape(theirs):
            raise InputError(
                f"optimizer state {path} array {index} has shape {np.shape(ours)} but this "
                f"model needs {np.shape(theirs)} (another model): {RESET_HINT}"
            )
    return jax.tree.unflatten(treedef, saved), int(stored["iterations"])
