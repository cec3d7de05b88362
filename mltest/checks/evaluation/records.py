"""The recorded results the gate compares with, on disk, per environment.

- **The previous result**: the entry `checks.evaluation.<env>` of `baselines.json` (values per
  data set, slice and metric; each data set's size and fingerprint; what the candidate was; the
  history of earlier recordings) plus the predictions behind it in
  `evaluation/previous/<env>.safetensors`. Every `mltest baseline update` of the check rewrites
  it and moves the old values into the history.
- **The pinned reference**: `evaluation/pinned/<env>.json` and `.safetensors`, the same kind of
  record in files of their own. Only `mltest baseline update --pin` (and the very first
  recording, when no reference exists) writes them, so per-PR updates of the previous result
  cannot move it; keep the folder under CODEOWNERS to make re-pinning a reviewed decision.

Predictions are stored so a later run can compare on the same examples (paired). They are kept
small: labels for classifiers (scores only when AUROC needs them), values for regression.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from mltest.checks.evaluation.compare import Reference
from mltest.checks.evaluation.metrics import Predictions
from mltest.errors import BaselineError

FORMAT = 1
CHECK = "evaluation"
PREVIOUS_PREDICTIONS = "evaluation/previous/{env}.safetensors"
PINNED_JSON = "evaluation/pinned/{env}.json"
PINNED_PREDICTIONS = "evaluation/pinned/{env}.safetensors"


@dataclass
class Loaded:
    """A record read back: its JSON entry and the predictions per data set (when readable)."""

    entry: dict[str, Any]
    predictions: dict[str, Predictions]
    problem: str = ""  # why the predictions could not be used, for a notice


def fingerprint(target: Any) -> str:
    """What identifies a data set's examples: its targets, in order (sha256, 16 hex digits)."""
    data = target.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{data.dtype}{tuple(data.shape)}".encode())
    digest.update(data.numpy().tobytes())
    return digest.hexdigest()[:16]


def read_previous(store: Any, env: str) -> Loaded | None:
    entry = store.get(CHECK, env)
    if entry is None:
        return None
    _check_entry(entry, f"baselines.json checks.{CHECK}.{env}")
    return Loaded(entry, *_predictions(store, PREVIOUS_PREDICTIONS.format(env=env)))


def read_pinned(store: Any, env: str) -> Loaded | None:
    from mltest.files import read_regular_file

    path = store.read_path(PINNED_JSON.format(env=env))
    if not path.exists():
        return None
    try:
        entry = json.loads(read_regular_file(path).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"{path}: not a readable pinned reference ({exc}); restore it from "
                            "git, or pin again with `mltest baseline update --check evaluation "
                            "--pin`") from exc  # fmt: skip
    _check_entry(entry, str(path))
    return Loaded(entry, *_predictions(store, PINNED_PREDICTIONS.format(env=env)))


def _check_entry(entry: Any, where: str) -> None:
    ok = isinstance(entry, dict) and isinstance(entry.get("results"), dict) and all(
        isinstance(slices, dict) and all(isinstance(m, dict) for m in slices.values())
        for slices in entry["results"].values()
    )
    if not ok or entry.get("format") != FORMAT:
        raise BaselineError(f"{where}: not an evaluation record of format {FORMAT}; restore it "
                            "from git or record it again with `mltest baseline update --check "
                            "evaluation`")  # fmt: skip


def _predictions(store: Any, relative: str) -> tuple[dict[str, Predictions], str]:
    from safetensors.torch import load_file

    path = store.read_path(relative)
    if not path.exists():
        return {}, f"{relative} is missing, so comparisons use the recorded values only"
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        return {}, f"{relative} cannot be read ({exc}); comparisons use the recorded values only"
    found: dict[str, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        dataset, _, part = name.rpartition("/")
        if part in ("labels", "scores", "values"):
            found.setdefault(dataset, {})[part] = tensor
    return {d: as_read(Predictions(**parts)) for d, parts in found.items()}, ""


def reference(name: str, loaded: Loaded | None, fingerprints: dict[str, str],
              counts: dict[str, int]) -> tuple[Reference | None, list[str]]:  # fmt: skip
    """A record as a `Reference`: predictions only for data sets with the same examples as
    now; and notices for those compared on recorded values only."""
    if loaded is None:
        return None, []
    notices, paired = [], {}
    datasets = loaded.entry.get("datasets")
    datasets = datasets if isinstance(datasets, dict) else {}
    for dataset, now in fingerprints.items():
        then = datasets.get(dataset, {})
        if not isinstance(then, dict) or dataset not in loaded.entry["results"]:
            continue
        preds = loaded.predictions.get(dataset)
        if then.get("fingerprint") != now:
            notices.append(
                f"data set `{dataset}` differs from the one the {name} result was measured on "
                f"({then.get('examples', '?')} examples then, {counts[dataset]} now): compared "
                "with its recorded values, without pairing examples"
            )
        elif preds is None or any(len(t) != counts[dataset] for t in preds.tensors().values()):
            if loaded.problem:
                notices.append(f"{name}: {loaded.problem}")
        else:
            paired[dataset] = preds
    return Reference(name, loaded.entry["results"], paired), notices


def entry(settings: Any, results: dict, sizes: dict, fingerprints: dict, counts: dict,
          history: list) -> dict[str, Any]:  # fmt: skip
    """The JSON entry of a record of this run."""
    import pytorch_lightning
    import torch

    return {
        "format": FORMAT,
        "recorded": datetime.date.today().isoformat(),
        "candidate": settings.candidate.describe(),
        "task": settings.task,
        "torch": torch.__version__,
        "lightning": pytorch_lightning.__version__,
        "datasets": {d: {"examples": counts[d], "fingerprint": fingerprints[d]} for d in counts},
        "results": results,
        "sizes": sizes,
        "history": history,
    }


def write(store: Any, env: str, record: dict[str, Any], predictions: dict[str, Predictions],
          *, pin: bool) -> None:  # fmt: skip
    """Record this run as the previous result; with `pin`, as the pinned reference too."""
    from safetensors.torch import save

    tensors = {
        f"{dataset}/{part}": tensor.contiguous()
        for dataset, preds in predictions.items()
        for part, tensor in preds.tensors().items()
    }
    blob = save(tensors, metadata={"format": str(FORMAT), "environment": env})
    store.write_file(PREVIOUS_PREDICTIONS.format(env=env), blob)
    store.put(CHECK, env, record)
    if pin:
        pinned = {k: v for k, v in record.items() if k != "history"}
        pinned["pinned"] = record["recorded"]
        text = json.dumps(pinned, indent=2, sort_keys=True) + "\n"
        store.write_file(PINNED_JSON.format(env=env), text.encode())
        store.write_file(PINNED_PREDICTIONS.format(env=env), blob)


def stored(preds: Predictions, keep_scores: bool) -> Predictions:
    """What a record keeps of the candidate's predictions (compact types)."""
    import torch

    labels = preds.labels
    if labels is not None:
        top = int(labels.max()) if labels.numel() else 0
        labels = labels.to(torch.int16 if top < 2**15 else torch.int32)
    scores = preds.scores.float() if keep_scores and preds.scores is not None else None
    values = preds.values.float() if preds.values is not None else None
    return Predictions(labels, scores, values)


def as_read(preds: Predictions) -> Predictions:
    """Stored predictions in the types the metrics take."""
    labels = preds.labels.long() if preds.labels is not None else None
    return Predictions(labels, preds.scores, preds.values)
