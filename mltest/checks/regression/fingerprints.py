"""Module fingerprints: what each submodule's call computed on the fixed inputs, on disk.

A golden record keeps, beside its two files, `<env>.modules.json`: for every module call made
while predicting the fixed inputs (in call order), its qualified name, class, when it started
and ended (one clock for both, so calls nest), how many parameters and buffers it owns and
their norm, and for its inputs and outputs each tensor's shape, dtype, mean, standard
deviation, largest magnitude, count of non-finite values and a position-weighted sum that a
permutation moves (mean and spread do not). A final pseudo-call, `<predict_step>`, holds the
same for predict_step's outputs after post-processing. One row per call, a few hundred bytes.

The file names the golden outputs it belongs to (`outputs_hash`), as the golden's own JSON
does its tensors; a file of another recording, or with numbers that are not finite, is not
used. Pure: no torch (the measuring side is `trace`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
PREDICT = "<predict_step>"  # the pseudo-call holding predict_step's outputs
MAX_CALLS = 400  # calls kept per trace: a bound on the file's size for models with loops


@dataclass(frozen=True)
class Stats:
    """One tensor seen by a module call, summarised."""

    shape: tuple[int, ...]
    dtype: str
    mean: float
    std: float
    absmax: float
    proj: float  # sum of values times fixed pseudo-random weights (`trace`), / sqrt(count)
    nonfinite: int = 0


@dataclass(frozen=True)
class Call:
    """One call of a named submodule (`name#2` for its second call within a batch)."""

    name: str
    cls: str
    start: int
    end: int
    params: tuple[int, float]  # own parameters and buffers: element count, L2 norm
    inputs: tuple[Stats, ...]
    outputs: tuple[Stats, ...]

    @property
    def shown(self) -> str:
        """`net.layers.3.upsample` (`ConvTranspose2d`), the model itself for the root."""
        if self.name == PREDICT:
            return "predict_step's outputs"
        return f"`{self.name}` ({self.cls})" if self.name else f"the model ({self.cls})"


@dataclass(frozen=True)
class Trace:
    """Every module call of one prediction of the fixed inputs, in call order.

    Attributes:
        reference: which model was traced: `fresh init (seed 0)` for a model under test that
            the check trains (its weights before training, so a changed forward shows where
            it changed, not everywhere), else `model under test`.
        batch: examples in the first batch (shapes compare on it).
        calls: the calls in start order; `<predict_step>` last.
        truncated: more than `MAX_CALLS` calls were made; the later ones are not kept.
    """

    reference: str
    batch: int
    calls: tuple[Call, ...]
    truncated: bool = False


def encode(trace: Trace, outputs_hash: str) -> bytes:
    """The file's bytes: a readable header and one compact line per call."""
    header = {
        "format_version": FORMAT_VERSION,
        "outputs_hash": outputs_hash,  # ties this file to the golden outputs it was traced with
        "reference": trace.reference,
        "batch": trace.batch,
        "truncated": trace.truncated,
    }
    rows = [json.dumps(_row(call), separators=(",", ":")) for call in trace.calls]
    head = json.dumps(header, indent=2, sort_keys=True)[:-2]  # reopen the object for `calls`
    body = ",\n    ".join(rows)
    return f'{head},\n  "calls": [\n    {body}\n  ]\n}}\n'.encode()


def _row(call: Call) -> dict[str, Any]:
    return {
        "name": call.name,
        "class": call.cls,
        "at": [call.start, call.end],
        "params": [call.params[0], _short(call.params[1])],
        "in": [_stats_row(s) for s in call.inputs],
        "out": [_stats_row(s) for s in call.outputs],
    }


def _stats_row(s: Stats) -> list[Any]:
    return [list(s.shape), s.dtype, *(_short(v) for v in (s.mean, s.std, s.absmax, s.proj)),
            s.nonfinite]


def _short(value: float) -> float:
    return float(f"{value:.7g}")  # 7 digits: far below any tolerance, a third of the bytes


class FingerprintError(ValueError):
    """A fingerprint file that cannot be used: the message says why and what to do."""


def read(path: Path, outputs_hash: str | None) -> Trace | None:
    """The trace stored at `path`, or None when there is none (a golden recorded before
    fingerprints were).

    Args:
        outputs_hash: the golden outputs' hash; a file recorded with other outputs is refused.

    Raises:
        FingerprintError: unreadable, another format, another recording, or a number that is
            not finite; the message names the file.
    """
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FingerprintError(f"{path.name} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        version = data.get("format_version") if isinstance(data, dict) else None
        raise FingerprintError(f"{path.name}: format_version {version!r} is not {FORMAT_VERSION}")
    if outputs_hash is not None and data.get("outputs_hash") != outputs_hash:
        raise FingerprintError(
            f"{path.name} comes from another recording than the golden outputs (its "
            "`outputs_hash` differs), as an interrupted update leaves it"
        )
    try:
        calls = tuple(_call(row) for row in data["calls"])
        trace = Trace(str(data["reference"]), int(data["batch"]), calls, bool(data["truncated"]))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise FingerprintError(f"{path.name}: malformed ({type(exc).__name__}: {exc})") from exc
    return trace


def _call(row: dict[str, Any]) -> Call:
    start, end = (int(v) for v in row["at"])
    count, norm = row["params"]
    return Call(
        name=str(row["name"]),
        cls=str(row["class"]),
        start=start,
        end=end,
        params=(int(count), _finite(norm)),
        inputs=tuple(_stats(s) for s in row["in"]),
        outputs=tuple(_stats(s) for s in row["out"]),
    )


def _stats(row: list[Any]) -> Stats:
    shape, dtype, mean, std, absmax, proj, nonfinite = row
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"shape {shape!r} is not a list of sizes")
    std, absmax = _finite(std), _finite(absmax)
    if std < 0 or absmax < 0 or int(nonfinite) < 0:
        raise ValueError("std, abs-max and the non-finite count cannot be negative")
    return Stats(tuple(shape), str(dtype), _finite(mean), std, absmax, _finite(proj),
                 int(nonfinite))


def _finite(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return float(value)


def file_for(meta_file: str) -> str:
    """`golden/regression/<env>.modules.json`, beside the golden's `<env>.json`."""
    return meta_file.removesuffix(".json") + ".modules.json"
