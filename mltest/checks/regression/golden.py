"""Golden outputs on disk, and turning model outputs (or inputs) into named arrays.

A golden record is two files side by side, both safe to load and readable in review:
`<env>.safetensors` (numeric arrays, no pickle) and `<env>.json` (format version, string
outputs, dtypes, shapes, the input hash, the measured training noise and where and when it was
recorded). There is one record per environment (`cpu-torch2.13-32-true`), under
`golden/<check>/`; the single `golden/<check>.*` record of the first layout is still read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mltest.errors import BaselineError, ProjectError

FORMAT_VERSION = 1
Value = Any  # np.ndarray, or list[str] for string outputs


def flatten_batches(batches: list[Any], what: str) -> dict[str, Value]:
    """Named arrays from per-batch structures, joined along the example (first) axis.

    A tensor is named `output`; a tuple or list of tensors gives `0`, `1`...; a dict gives its
    keys (nested as `outer.inner`). A list of strings is one string output. Because batches are
    joined, the result does not depend on the batch size.

    Ragged parts (variable-length sequences padded per batch, as dynamic padding does) are
    padded with zeros to the longest batch, and each example's own extent along the trailing
    axes is kept as an extra integer array `<name>#extent` ([examples, trailing axes]), so a
    comparison can judge each example on the positions it has, whatever the batching.

    Args:
        batches: one structure per batch (all of the same layout).
        what: what these are, for messages (`predict_step outputs`, `inputs`).

    Raises:
        ProjectError: when the layout changes between batches or holds an unsupported type.
    """
    joined: dict[str, list[Value]] = {}
    for index, batch in enumerate(batches):
        leaves = dict(_leaves(batch, "", what))
        if joined and set(leaves) != set(joined):
            raise ProjectError(
                f"{what}: batch {index} has parts {sorted(leaves)} but batch 0 had "
                f"{sorted(joined)}; every batch must have the same layout"
            )
        for name, leaf in leaves.items():
            joined.setdefault(name, []).append(leaf)
    flat: dict[str, Value] = {}
    for name, parts in joined.items():
        flat[name] = _join(name, parts, what)
        if isinstance(flat[name], tuple):  # ragged: the padded array and each example's extent
            flat[name], flat[name + EXTENT] = flat[name]
    return flat


EXTENT = "#extent"  # suffix of the per-example extents kept with a ragged array


def is_extent(name: str) -> bool:
    """Whether `name` is the extents companion of a ragged array, not an output of its own."""
    return name.endswith(EXTENT)


def _leaves(obj: Any, prefix: str, what: str):
    name = prefix or "output"
    if hasattr(obj, "detach") and hasattr(obj, "numpy"):  # a torch tensor, without importing it
        yield name, _tensor_to_numpy(obj)
    elif isinstance(obj, np.ndarray):
        yield name, obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key), what)
    elif isinstance(obj, str):
        yield name, [obj]
    elif isinstance(obj, (bool, int, float, np.generic)):
        yield name, np.asarray([obj])
    elif isinstance(obj, (list, tuple)):
        if obj and all(isinstance(x, str) for x in obj):
            yield name, list(obj)
        elif obj and all(isinstance(x, (bool, int, float)) for x in obj):
            yield name, np.asarray(obj)
        else:
            for index, value in enumerate(obj):
                yield from _leaves(value, f"{prefix}.{index}" if prefix else str(index), what)
    elif obj is None:
        return
    else:
        raise ProjectError(
            f"{what}: `{name}` is a {type(obj).__name__}; only tensors, arrays, numbers, strings "
            "and tuples/lists/dicts of them can be compared (a post-processing function can "
            "convert other types)"
        )


def _tensor_to_numpy(tensor: Any) -> np.ndarray:
    import torch

    tensor = tensor.detach().cpu()
    if tensor.dtype in (torch.bfloat16, torch.float16):  # numpy has no bfloat16
        tensor = tensor.float()
    return tensor.numpy()


def _join(name: str, parts: list[Value], what: str) -> Value:
    if isinstance(parts[0], list):
        if not all(isinstance(p, list) for p in parts):
            raise ProjectError(f"{what}: `{name}` mixes strings and numbers between batches")
        return [s for part in parts for s in part]
    arrays = [np.atleast_1d(p) for p in parts]
    try:
        return np.ascontiguousarray(np.concatenate(arrays, axis=0))
    except ValueError as exc:
        shapes = sorted({a.shape for a in arrays})
        if len({a.ndim for a in arrays}) == 1 and len({a.dtype.kind for a in arrays}) == 1:
            return _pad_ragged(arrays)
        raise ProjectError(
            f"{what}: `{name}` cannot be joined across batches (shapes {shapes}): every batch "
            "must share all but the first dimension"
        ) from exc


def _pad_ragged(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Batches that differ in trailing sizes, zero-padded to the largest, and the extents."""
    widest = tuple(max(a.shape[axis] for a in arrays) for axis in range(1, arrays[0].ndim))
    dtype = np.result_type(*arrays)
    padded, extents = [], []
    for a in arrays:
        out = np.zeros((a.shape[0], *widest), dtype=dtype)
        out[(slice(None), *(slice(0, n) for n in a.shape[1:]))] = a
        padded.append(out)
        extents.append(np.tile(np.asarray(a.shape[1:], dtype=np.int64), (a.shape[0], 1)))
    return np.concatenate(padded, axis=0), np.concatenate(extents, axis=0)


def content_hash(arrays: Mapping[str, Value]) -> str:
    """A sha256 over names, dtypes, shapes and bytes: equal only for identical contents."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = arrays[name]
        digest.update(name.encode() + b"\0")
        if isinstance(value, list):
            digest.update(json.dumps(value).encode())
        else:
            value = np.ascontiguousarray(value)
            digest.update(f"{value.dtype.str}{value.shape}".encode())
            _update_bytes(digest, value)
    return "sha256:" + digest.hexdigest()


def batches_hash(batches: list[Any], what: str) -> str:
    """`content_hash(flatten_batches(batches, what))`, without joining the batches.

    Joining copies every input once (69 MB for 10,000 small images) only to be hashed: when
    every batch holds the same names, each an array of one dtype and trailing shape, the
    joined array's bytes are the batches' bytes in order, so they are hashed batch by batch
    to the same value. Anything else (strings, ragged parts, a changed layout, whose errors
    `flatten_batches` words) is joined and hashed as before.
    """
    leaves = [dict(_leaves(batch, "", what)) for batch in batches]
    names = sorted(leaves[0]) if leaves else []
    streamable = bool(names) and all(sorted(part) == names for part in leaves)
    for name in names if streamable else ():
        parts = [part[name] for part in leaves]
        first = parts[0]
        streamable = all(
            isinstance(p, np.ndarray) and p.ndim and p.dtype == first.dtype
            and p.shape[1:] == first.shape[1:]
            for p in parts
        )  # fmt: skip
        if not streamable:
            break
    if not streamable:
        return content_hash(flatten_batches(batches, what))
    digest = hashlib.sha256()
    for name in names:
        parts = [part[name] for part in leaves]
        shape = (sum(len(p) for p in parts), *parts[0].shape[1:])
        digest.update(name.encode() + b"\0")
        digest.update(f"{parts[0].dtype.str}{shape}".encode())
        for part in parts:
            _update_bytes(digest, np.ascontiguousarray(part))
    return "sha256:" + digest.hexdigest()


def _update_bytes(digest: Any, value: np.ndarray) -> None:
    try:
        digest.update(memoryview(value).cast("B"))  # no copy of large inputs
    except (TypeError, ValueError):  # dtypes the buffer protocol does not export
        digest.update(value.tobytes())


def summarise(arrays: Mapping[str, Value]) -> dict[str, dict[str, Any]]:
    """Shape, dtype and simple statistics per array, to show *how* inputs changed."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in sorted(arrays.items()):
        if isinstance(value, list):
            out[name] = {"kind": "string", "count": len(value)}
            continue
        entry: dict[str, Any] = {"shape": list(value.shape), "dtype": str(value.dtype)}
        if value.size and (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
            as_float = value.astype(np.float64)
            entry.update(
                mean=float(as_float.mean()),
                std=float(as_float.std()),
                min=float(as_float.min()),
                max=float(as_float.max()),
            )
        out[name] = entry
    return out


@dataclass
class Golden:
    """A golden record read back from disk."""

    arrays: dict[str, Value]
    metadata: dict[str, Any]


def record_files(check: str, env_key: str) -> tuple[str, str]:
    """The tensor and metadata files of `check`'s golden record for one environment, relative
    to the baseline folder: `golden/<check>/<env_key>.safetensors` and `.json`."""
    stem = f"golden/{check}/{env_key}"
    return f"{stem}.safetensors", f"{stem}.json"


def legacy_files(check: str) -> tuple[str, str]:
    """The single record of the first layout (`golden/<check>.safetensors`), still read."""
    return f"golden/{check}.safetensors", f"golden/{check}.json"


def encode_golden(arrays: Mapping[str, Value], metadata: dict[str, Any]) -> tuple[bytes, bytes]:
    """The record's two files as bytes: numbers as safetensors, strings and metadata as JSON.

    Bytes, not paths: the worker that computes them never writes into the repository; the
    baseline store stages them and the supervisor commits both.
    """
    from safetensors.numpy import save

    numeric = {k: np.ascontiguousarray(v) for k, v in arrays.items() if not isinstance(v, list)}
    strings = {k: v for k, v in arrays.items() if isinstance(v, list)}
    meta = {
        "format_version": FORMAT_VERSION,
        **metadata,
        "outputs": summarise(arrays),
        "outputs_hash": content_hash(arrays),  # ties this file to its .safetensors partner
        "strings": strings,
    }
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    return save(numeric), text.encode("utf-8")


def read_golden(
    tensors_path: Path, meta_path: Path, update_command: str, expected_hash: str | None = None
) -> Golden | None:
    """Read a record from its two files, or None when neither exists.

    Args:
        expected_hash: the outputs' hash as baselines.json recorded it, checked when given.

    Raises:
        BaselineError: a file is missing its partner, unreadable, or of another format; the
            two files (or baselines.json) come from different recordings, as a kill between
            writing them leaves them; a measured noise is not finite or out of range. The
            message names the file, the key and how to rewrite it.
    """
    from safetensors.numpy import load_file

    if not tensors_path.exists() and not meta_path.exists():
        return None
    fix = f"restore it from git, or rewrite the golden outputs with `{update_command}`"
    for path in (tensors_path, meta_path):
        if not path.exists():
            raise BaselineError(f"{path}: missing (its partner file exists); {fix}")
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"{meta_path}: not valid JSON ({exc}); {fix}") from exc
    if not isinstance(metadata, dict) or metadata.get("format_version") != FORMAT_VERSION:
        version = metadata.get("format_version") if isinstance(metadata, dict) else None
        raise BaselineError(
            f"{meta_path}: golden format_version {version!r} is not {FORMAT_VERSION}; {fix}"
        )
    try:
        arrays: dict[str, Value] = dict(load_file(str(tensors_path)))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise BaselineError(
            f"{tensors_path}: not a readable safetensors file ({type(exc).__name__}: {exc}); {fix}"
        ) from exc
    strings = metadata.get("strings", {})
    if not isinstance(strings, dict) or not all(isinstance(v, list) for v in strings.values()):
        raise BaselineError(f"{meta_path}: `strings` must map names to lists; {fix}")
    arrays.update(strings)
    _check_noise(metadata, arrays, meta_path, fix)
    actual = content_hash(arrays)
    if metadata.get("outputs_hash") not in (None, actual):
        raise BaselineError(
            f"{tensors_path} and {meta_path.name} come from different recordings (the "
            f"`outputs_hash` in {meta_path.name} does not match the tensors), as an update "
            f"interrupted between writing the two files leaves them; {fix}"
        )
    if expected_hash not in (None, actual):
        raise BaselineError(
            f"{tensors_path} does not hold the outputs baselines.json recorded for it (its "
            f"`outputs_hash` differs), as an interrupted update leaves it; {fix}"
        )
    return Golden(arrays=arrays, metadata=metadata)


def _check_noise(metadata: dict[str, Any], arrays: dict[str, Value], path: Path, fix: str):
    """Each output's measured `noise`, which widens its tolerance, is a finite number from 0 to
    twice the largest magnitude of that output: a larger one (Infinity, 1e300) could not come
    from two harmless re-trainings, and it would let any change pass."""
    noise = metadata.get("noise") or {}
    if not isinstance(noise, dict):
        raise BaselineError(f"{path}: `noise` must map output names to numbers; {fix}")
    for name, value in noise.items():
        output = arrays.get(name)
        largest = 0.0
        if isinstance(output, np.ndarray) and output.dtype.kind in "fiu":
            finite = np.abs(output[np.isfinite(output)].astype(np.float64))
            largest = float(finite.max()) if finite.size else 0.0
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not 0 <= value <= 2 * largest:
            raise BaselineError(
                f"{path}: `noise.{name}` is {value!r}; the measured noise of an output is a "
                f"number from 0 to twice its largest magnitude ({2 * largest:.4g}); {fix}"
            )
