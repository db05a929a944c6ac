"""Read and write checkpoints in DeepMind's published ``.npz`` format.

The file is ``numpy.savez`` of one flat mapping. Nested structure is spelled in the keys, joined
with ``:``: ``params:<haiku module path>:<parameter name>``, ``model_config:<field>``,
``task_config:<field>:<index>`` for tuples, and the top-level strings ``description`` and
``license``. Fields that are ``None`` are left out. Nothing is pickled, so a checkpoint can be
read with ``allow_pickle=False``.
"""

from __future__ import annotations

import dataclasses
import os
import typing
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, Union

import numpy as np

from graphcast_zero.atomic import atomic_path
from graphcast_zero.config import ModelConfig, TaskConfig
from graphcast_zero.errors import CheckpointError

Params = dict[str, dict[str, np.ndarray]]
_SEPARATOR = ":"


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A GraphCast checkpoint: haiku parameters plus the configs they were trained with.

    Attributes:
      params: haiku parameters, ``{module_path: {name: array}}``.
      model_config: the architecture.
      task_config: the variables, levels and input duration.
      description: free text from the publisher.
      license: the licence of the weights.
    """

    params: Params
    model_config: ModelConfig
    task_config: TaskConfig
    description: str
    license: str


def _flatten(value: Any, prefix: str, out: dict[str, np.ndarray]) -> None:
    """Writes ``value`` into ``out`` under ``prefix``, spelling structure in the key."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = ((field.name, getattr(value, field.name)) for field in dataclasses.fields(value))
    elif isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = ((str(index), item) for index, item in enumerate(value))
    else:
        out[prefix] = np.asarray(value)
        return
    for key, item in items:
        if item is None:  # The published format leaves optional fields out.
            continue
        _flatten(item, f"{prefix}{_SEPARATOR}{key}" if prefix else str(key), out)


def checkpoint_to_flat_dict(checkpoint: Checkpoint) -> dict[str, np.ndarray]:
    """Flattens a checkpoint into the key/array mapping stored in the ``.npz`` file."""
    flat: dict[str, np.ndarray] = {}
    _flatten(checkpoint, "", flat)
    return flat


def write_checkpoint(checkpoint: Checkpoint, destination: BinaryIO) -> None:
    """Writes a checkpoint to an open binary file object."""
    np.savez(destination, **checkpoint_to_flat_dict(checkpoint))


def save_checkpoint(checkpoint: Checkpoint, path: Union[str, os.PathLike]) -> Path:
    """Saves a checkpoint atomically: a temporary file beside ``path``, then a rename.

    Args:
      checkpoint: what to save.
      path: the final ``.npz`` path.

    Returns:
      The path written.
    """
    path = Path(path)
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        write_checkpoint(checkpoint, file)
    return path


def _unflatten(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Rebuilds the nested mapping spelled by the ``:``-joined keys."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split(_SEPARATOR)
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise CheckpointError(f"key {key!r} nests under a value")
        node[leaf] = value
    return tree


def _scalar(value: np.ndarray, annotation: Any) -> Any:
    if annotation is str:
        return str(value)
    if annotation is int:
        return int(value)
    return float(value)


def _build_config(cls: type, tree: Mapping[str, Any], label: str) -> Any:
    """Rebuilds a config dataclass from its flattened fields, using its annotations."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        annotation = hints[field.name]
        if field.name not in tree:
            if type(None) in typing.get_args(annotation):
                values[field.name] = None
                continue
            raise CheckpointError(f"missing key {label}:{field.name}")
        raw = tree[field.name]
        if typing.get_origin(annotation) is tuple:
            element = typing.get_args(annotation)[0]
            if not isinstance(raw, Mapping):
                raw = {"0": raw} if np.ndim(raw) == 0 else {str(i): v for i, v in enumerate(raw)}
            ordered = sorted(raw.items(), key=lambda item: int(item[0]))
            values[field.name] = tuple(_scalar(v, element) for _, v in ordered)
        else:
            base = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            values[field.name] = _scalar(raw, base[0] if base else annotation)
    return cls(**values)


def checkpoint_from_flat_dict(flat: Mapping[str, np.ndarray]) -> Checkpoint:
    """Rebuilds a checkpoint from the key/array mapping of a ``.npz`` file.

    Raises:
      CheckpointError: if parameters, a config field, the description or licence are missing.
    """
    tree = _unflatten(flat)
    for section in ("params", "model_config", "task_config"):
        if not isinstance(tree.get(section), Mapping) or not tree[section]:
            raise CheckpointError(f"missing {section}:* keys")
    params: Params = {}
    for module, leaves in tree["params"].items():
        if not isinstance(leaves, Mapping):
            raise CheckpointError(f"params:{module} holds no named parameters")
        params[module] = {name: np.asarray(array) for name, array in leaves.items()}
    return Checkpoint(
        params=params,
        model_config=_build_config(ModelConfig, tree["model_config"], "model_config"),
        task_config=_build_config(TaskConfig, tree["task_config"], "task_config"),
        description=str(tree.get("description", "")),
        license=str(tree.get("license", "")),
    )


def load_checkpoint(path: Union[str, os.PathLike]) -> Checkpoint:
    """Loads a GraphCast checkpoint from an ``.npz`` file, without unpickling anything.

    Args:
      path: the checkpoint file.

    Returns:
      The checkpoint with numpy parameters and rebuilt configs.

    Raises:
      CheckpointError: with a one-line message naming the file and the fix, if the file is
        missing, truncated, not an ``.npz`` archive, or not a GraphCast checkpoint.
    """
    path = Path(path)
    refetch = "delete it and fetch it again (`invoke fetch-data`)"
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; run `invoke fetch-data` first")
    try:
        with np.load(path, allow_pickle=False) as archive:
            flat = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        reason = (
            "truncated or corrupt" if zipfile.is_zipfile(path) or path.stat().st_size else "empty"
        )
        raise CheckpointError(f"{path}: checkpoint is {reason} ({error}); {refetch}") from None
    if not any(key.startswith("params" + _SEPARATOR) for key in flat):
        raise CheckpointError(
            f"{path}: not a GraphCast checkpoint (no params:* keys); pass a checkpoint from the "
            "dm_graphcast bucket's params/ folder"
        )
    try:
        return checkpoint_from_flat_dict(flat)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}; {refetch}") from None
