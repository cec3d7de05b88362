"""Trace a prediction module by module: forward hooks on every named submodule summarise what
each call took and returned (`fingerprints.Stats`), while predict_step runs on the fixed inputs.

Which model is traced: for a model under test the check trains (`source: train`), the seeded
fresh init, before training. Training moves every weight, so a trained model's trace differs
from the first layer on whatever changed; at init, the same code gives the same weights and
the first call that differs is where the forward pass changed, and a trace that matches says
the change is in training. A checkpoint or the fresh init (`source: checkpoint | init`) is
traced as it is.

Runs in the worker; costs one model build (no training) and one prediction pass.
"""

from __future__ import annotations

import math
from typing import Any

from mltest.checks.regression.fingerprints import MAX_CALLS, PREDICT, Call, Stats, Trace

_FREQ = 0.7548776662466927  # an irrational step on a quadratic phase: weights without pattern
_PERIOD = 1_000_003  # a prime: the phase is i² mod it, exact in int64 for any tensor size
_LEAVES = 4  # tensors summarised per input or output (an RNN's state, a tuple of heads)


def record_trace(
    ctx: Any, batches: list[Any], outputs_hash: str, meta_file: str
) -> tuple[str | None, list[str]]:
    """At `baseline update`: trace the prediction and stage it beside the golden record.

    Returns:
        The fingerprint file (relative to the baseline folder), or None with a notice saying
        why none was recorded; the golden outputs are recorded either way.
    """
    from mltest.checks.regression.fingerprints import encode, file_for
    from mltest.errors import CheckTimeout, raised

    try:
        trace = trace_prediction(ctx, batches)
    except CheckTimeout:
        raise
    except Exception as exc:  # a model the hooks cannot follow: the golden stands without it
        return None, [
            f"module fingerprints were not recorded ({raised(exc)}): a future failure of "
            "this check cannot name the module whose output moved"
        ]
    path = file_for(meta_file)
    ctx.baselines.write_file(path, encode(trace, outputs_hash))
    cut = (
        [f"{path}: only the first {MAX_CALLS} module calls are fingerprinted"]
        if trace.truncated
        else []
    )
    return path, cut


def localise(ctx: Any, golden: Any, batches: list[Any], *, cross: bool) -> Any:
    """Trace this run and read it against the golden's fingerprints.

    Returns:
        A `locate.Localisation`, or a notice (a string) saying why the moved outputs are not
        traced to a module: no fingerprints recorded with this golden, an unusable file, or
        a model the trace cannot follow. Never raises on the way (but a timeout): the
        comparison's finding stands without it.
    """
    from mltest.checks.regression.fingerprints import FingerprintError, file_for, read
    from mltest.checks.regression.golden import content_hash, record_files
    from mltest.checks.regression.locate import CROSS_ENVIRONMENT, SAME_ENVIRONMENT, locate
    from mltest.errors import CheckTimeout, raised

    relative = file_for(record_files(ctx.name, golden.key)[1])
    expected = golden.metadata.get("outputs_hash") or content_hash(golden.arrays)
    try:
        recorded = read(ctx.baselines.read_path(relative), expected)
    except FingerprintError as exc:
        return (
            f"the moved outputs are not traced to a module: {exc}; restore {relative} from "
            "git with its golden files"
        )
    if recorded is None:
        return (
            f"the moved outputs are not traced to a module: this golden record has no module "
            f"fingerprints ({relative}; golden outputs recorded before mltest kept them)"
        )
    try:
        now = trace_prediction(ctx, batches)
    except CheckTimeout:
        raise
    except Exception as exc:
        return f"the moved outputs are not traced to a module: the trace failed ({raised(exc)})"
    if recorded.reference != now.reference:
        return (
            f"the moved outputs are not traced to a module: the golden's trace is of the "
            f"{recorded.reference}, this run's of the {now.reference} (model_under_test changed)"
        )
    return locate(recorded, now, tolerance=CROSS_ENVIRONMENT if cross else SAME_ENVIRONMENT)


def reference_model(ctx: Any) -> tuple[Any, str]:
    """The model to trace and its name in words (see the module's docstring)."""
    from mltest.checks.prediction import model_under_test
    from mltest.engine import device_for
    from mltest.seeding import isolated_global_state

    spec = ctx.loaded.config.model_under_test
    if spec.source != "train":
        return model_under_test(ctx), "model under test"
    with isolated_global_state():
        module = ctx.project.new_model(spec.seed)
    module.to(device_for(ctx.trainer_settings))
    module.eval()
    return module, f"fresh init (seed {spec.seed})"


def trace_prediction(ctx: Any, batches: list[Any]) -> Trace:
    """Predict `batches` with the reference model, as the check predicts, and trace it."""
    from mltest.checks.prediction import input_key, postprocess_fn
    from mltest.seeding import isolated_global_state, seed_all

    module, reference = reference_model(ctx)
    with isolated_global_state():
        seed_all(ctx.loaded.config.model_under_test.seed)
        return trace_module(module, batches, reference, postprocess_fn(ctx), input_key(ctx))


def trace_module(
    module: Any,
    batches: list[Any],
    reference: str = "model under test",
    postprocess: Any = None,
    input_key: int | str | None = None,
) -> Trace:
    """Predict `batches` through `module.predict_step` (see `prediction.predict`) with every
    submodule hooked; the hooks only read, so the outputs are the ones predict gives."""
    from mltest.checks.prediction import predict

    recorder = _Recorder(module)
    try:
        for batch in batches:
            recorder.next_batch()
            recorder.predicted(predict(module, [batch], postprocess, input_key))
    finally:
        recorder.remove()
    return recorder.trace(reference, _batch_size(batches))


class _Recorder:
    """Hooks on every submodule; per call key, running sums over all batches."""

    def __init__(self, module: Any):
        self._names = {id(m): name for name, m in module.named_modules()}
        self._keys: dict[str, dict[str, Any]] = {}  # key -> class, clocks, params, sums
        self._clock = 0
        self._seen: dict[str, int] = {}  # calls per name in this batch
        self._open: dict[int, list[str]] = {}  # id(module) -> keys of its running calls
        self._weights: dict[tuple, Any] = {}  # (offset, count, device) -> cosine weights
        # The last tensors summarised, held so their memory is not reused while cached: a
        # module's input is mostly the previous module's output, summarised once.
        self._recent: list[tuple[Any, tuple, list[float]]] = []
        self.truncated = False
        self._handles = []
        for m in module.modules():
            self._handles.append(m.register_forward_pre_hook(self._pre, with_kwargs=True))
            self._handles.append(m.register_forward_hook(self._post))

    def next_batch(self) -> None:
        self._seen.clear()
        self._recent.clear()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def _pre(self, module: Any, args: tuple, kwargs: dict) -> None:
        name = self._names.get(id(module), "?")
        self._seen[name] = self._seen.get(name, 0) + 1
        key = name if self._seen[name] == 1 else f"{name}#{self._seen[name]}"
        self._open.setdefault(id(module), []).append(key)
        entry = self._entry(key, module)
        if entry is not None:
            entry["start"] = entry.get("start", self._tick())
            self._accumulate(entry["in"], [*args, *kwargs.values()])

    def _post(self, module: Any, args: tuple, output: Any) -> None:
        running = self._open.get(id(module))
        key = running.pop() if running else None
        entry = self._keys.get(key) if key is not None else None
        if entry is not None:
            entry["end"] = entry.get("end", self._tick())
            self._accumulate(entry["out"], output)

    def predicted(self, outputs: Any) -> None:
        entry = self._keys.setdefault(
            PREDICT, {"cls": "", "params": (0, 0.0), "in": [], "out": []}
        )
        entry["start"] = entry.get("start", self._tick())
        entry["end"] = entry.get("end", self._tick())
        self._accumulate(entry["out"], _strings_hashed(outputs))

    def _entry(self, key: str, module: Any) -> dict[str, Any] | None:
        if key not in self._keys:
            if len(self._keys) >= MAX_CALLS:
                self.truncated = True
                return None
            self._keys[key] = {
                "cls": type(module).__name__,
                "params": _own_params(module),
                "in": [],
                "out": [],
            }
        return self._keys[key]

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def _accumulate(self, sums: list[dict[str, Any]], value: Any) -> None:
        """Add this batch's tensors to the running sums (one per tensor position)."""
        for index, tensor in enumerate(_tensors(value, [])):
            if index == len(sums):
                dtype = str(tensor.dtype).removeprefix("torch.")
                sums.append({"shape": tuple(tensor.shape), "dtype": dtype, "n": 0, "s": 0.0,
                             "ss": 0.0, "max": 0.0, "p": 0.0, "bad": 0})
            acc = sums[index]
            s, ss, p, top, bad = self._summary(tensor, acc["n"])
            acc["bad"] += int(bad)
            acc["n"] += tensor.numel()
            acc["s"] += s
            acc["ss"] += ss
            acc["p"] += p
            acc["max"] = max(acc["max"], top)

    def _summary(self, tensor: Any, offset: int) -> list[float]:
        """Sum, sum of squares, cosine-weighted sum, largest magnitude, non-finite count."""
        import torch

        key = (tensor.data_ptr(), tuple(tensor.shape), tensor.stride(), tensor.dtype,
               tensor._version, offset)
        for _tensor, held_key, summary in self._recent:
            if held_key == key:
                return summary
        with torch.no_grad():
            x = tensor.detach()
            x = (x.abs() if x.is_complex() else x).reshape(-1)
            x = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
            bad = x.new_zeros(())
            if not bool(torch.isfinite(x.sum())):  # NaN and infinities make the sum so
                finite = torch.isfinite(x)
                bad = (~finite).sum().to(x.dtype)
                x = torch.where(finite, x, x.new_zeros(()))
            if x.numel():
                low, high = torch.aminmax(x)
                top = torch.maximum(low.abs(), high.abs())
            else:
                top = x.new_zeros(())
            weights = self._cosines(offset, x.numel(), x.device, x.dtype)
            stacked = torch.stack([x.sum(), torch.dot(x, x), torch.dot(x, weights), top, bad])
            summary = stacked.double().tolist()
        self._recent = [*self._recent[-3:], (tensor, key, summary)]
        return summary

    def _cosines(self, offset: int, count: int, device: Any, dtype: Any) -> Any:
        import torch

        key = (offset, count, str(device), dtype)
        if key not in self._weights:
            # cos(f·i²): partial sums over any block of positions grow like its square root,
            # so moving a block (channels swapped, a constant shift of one channel) moves the
            # weighted sum; a linear phase would sum to almost nothing over each block.
            steps = torch.arange(offset, offset + count, device=device, dtype=torch.int64)
            phase = ((steps * steps) % _PERIOD).to(torch.float64) * _FREQ
            self._weights[key] = torch.cos(phase).to(dtype)
        return self._weights[key]

    def trace(self, reference: str, batch: int) -> Trace:
        calls = [
            Call(
                name=key,
                cls=e["cls"],
                start=e["start"],
                end=e.get("end", e["start"]),
                params=e["params"],
                inputs=tuple(_finish(s) for s in e["in"]),
                outputs=tuple(_finish(s) for s in e["out"]),
            )
            for key, e in self._keys.items()
        ]
        calls.sort(key=lambda c: c.start)
        return Trace(reference, batch, tuple(calls), self.truncated)


def _strings_hashed(value: Any) -> Any:
    """Lists of strings (labels from post-processing) as a tensor of their CRC-32s, so a
    shifted label map moves the trace of predict_step's outputs too."""
    import zlib

    import torch

    if isinstance(value, dict):
        return {key: _strings_hashed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(item, str) for item in value):
            codes = [zlib.crc32(item.encode()) % 65_521 for item in value]
            return torch.tensor(codes, dtype=torch.float64)
        return [_strings_hashed(item) for item in value]
    return value


def _tensors(value: Any, found: list[Any]) -> list[Any]:
    """The first `_LEAVES` tensors in a (nested) tuple, list or dict, in order."""
    if len(found) >= _LEAVES:
        return found
    if hasattr(value, "detach") and hasattr(value, "shape"):
        found.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _tensors(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _tensors(item, found)
    return found


def _finish(acc: dict[str, Any]) -> Stats:
    good = max(acc["n"] - acc["bad"], 1)
    mean = acc["s"] / good
    return Stats(
        shape=acc["shape"],
        dtype=acc["dtype"],
        mean=mean,
        std=math.sqrt(max(acc["ss"] / good - mean * mean, 0.0)),
        absmax=acc["max"],
        proj=acc["p"] / math.sqrt(max(acc["n"], 1)),
        nonfinite=acc["bad"],
    )


def _own_params(module: Any) -> tuple[int, float]:
    """Element count and L2 norm of the parameters and buffers a module holds itself."""
    count, squares = 0, 0.0
    for tensor in [*module.parameters(recurse=False), *module.buffers(recurse=False)]:
        if tensor.is_floating_point() or tensor.is_complex():
            count += tensor.numel()
            squares += float(tensor.detach().double().abs().pow(2).sum())
    return count, math.sqrt(squares)


def _batch_size(batches: list[Any]) -> int:
    first = _tensors(batches[0], []) if batches else []
    return int(first[0].shape[0]) if first and first[0].dim() else 0
