"""Hints for exceptions from the model code whose own message says too little, or advises the
wrong fix: one table, read by whoever turns a model exception into a check's error.

Each row is a test on the exception and the hint it gets; the first row that matches wins. A
hint names the cause and, where the traceback allows, the user's line to change.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import traceback
from collections.abc import Callable
from pathlib import Path

from mltest.errors import MODEL_GRAPH_ERRORS, is_user_file

(_BACKWARD_TWICE,) = MODEL_GRAPH_ERRORS
_BACKWARD_CALLS = ("manual_backward", "backward")


def _shm(exc: BaseException) -> bool:
    text = str(exc)
    return "shared memory" in text or ("/torch_" in text and "No space left" in text)


def _deterministic(exc: BaseException) -> bool:
    return "deterministic" in str(exc) and "use_deterministic_algorithms" in str(exc)


def _backward_twice(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and _BACKWARD_TWICE in str(exc)


def _shm_hint(exc: BaseException) -> str:
    return (
        "DataLoader workers pass batches through /dev/shm, and it ran out: in docker mode "
        "raise the action input `shm-size` (default 2g), or give the data module "
        "`num_workers: 0` in the config's data init_args."
    )


def _deterministic_hint(exc: BaseException) -> str:
    return (
        "This op has no deterministic kernel on this device. Set `trainer.deterministic: "
        "warn` in the config (the default) to run it with a notice, or `false`."
    )


def _backward_twice_hint(exc: BaseException) -> str:
    """torch's message advises `retain_graph=True`, which would hide the bug: a tensor whose
    graph an earlier backward freed, reused without `.detach()`."""
    call, loss = backward_site(exc)
    if not call:  # Lightning's own backward (automatic optimization): a tensor kept across steps
        return (
            "A tensor kept from an earlier step (an RNN's hidden state, a cached output or "
            "loss) is reused after that step's backward freed its graph: detach it where it is "
            "kept (`self.hidden = hidden.detach()`), do NOT add retain_graph=True, which hides "
            "the bug."
        )
    where = f" (the failing backward is at {call}"
    where += f"; its loss is computed at {loss})" if loss else ")"
    return (
        "A tensor produced by one network's graph (e.g. the generator's output) is used in a "
        "second loss after the first backward freed the graph" + where + ": detach it where "
        "it enters the other network's loss (`fake.detach()`), do NOT add retain_graph=True, "
        "which hides the bug."
    )


# (matches the exception, the hint for it), first match wins
KNOWN: list[tuple[Callable[[BaseException], bool], Callable[[BaseException], str]]] = [
    (_backward_twice, _backward_twice_hint),
    (_shm, _shm_hint),
    (_deterministic, _deterministic_hint),
]


def hint_for(exc: BaseException) -> str:
    """The table's hint for this exception, or "" when it is not a known one."""
    for matches, hint in KNOWN:
        if matches(exc):
            return hint(exc)
    return ""


def backward_site(exc: BaseException) -> tuple[str, str]:
    """(`model.py:57`, `model.py:55`): the user's line that called backward, and the line
    that last assigned the loss it was given (a plain name only); "" for what is not found."""
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if is_user_file(f.filename)]
    if not user:
        return "", ""
    call = user[-1]
    shown = f"{Path(call.filename).name}:{call.lineno}"
    return shown, _loss_line(exc, call)


def _loss_line(exc: BaseException, call: traceback.FrameSummary) -> str:
    """Where the name passed to the backward call was last assigned in the same function."""
    try:
        tree = ast.parse((call.line or "").strip())
        (stmt,) = tree.body
    except (SyntaxError, ValueError):
        return ""
    arg = _backward_arg(stmt)
    if arg is None:
        return ""
    code = next(
        (t.tb_frame.f_code for t in _walk(exc.__traceback__) if t.tb_lineno == call.lineno
         and t.tb_frame.f_code.co_filename == call.filename),
        None,
    )  # fmt: skip
    if code is None:
        return ""
    try:
        lines, first = inspect.getsourcelines(code)
        func = ast.parse(textwrap.dedent("".join(lines)))  # a method: indentation removed
    except (OSError, TypeError, SyntaxError):
        return ""
    found = 0
    for node in ast.walk(func):
        targets = [node.target] if isinstance(node, ast.AnnAssign | ast.AugAssign) else []
        targets += node.targets if isinstance(node, ast.Assign) else []
        for target in targets:
            if isinstance(target, ast.Name) and target.id == arg:
                line = first + node.lineno - 1
                if line < call.lineno:
                    found = max(found, line)
    return f"{Path(call.filename).name}:{found}" if found else ""


def _backward_arg(stmt: ast.stmt) -> str | None:
    """`loss` of `self.manual_backward(loss)` or `loss.backward()`."""
    node = stmt.value if isinstance(stmt, ast.Expr) else None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return None
    if node.func.attr not in _BACKWARD_CALLS:
        return None
    if node.func.attr == "manual_backward" and node.args and isinstance(node.args[0], ast.Name):
        return node.args[0].id
    if node.func.attr == "backward" and isinstance(node.func.value, ast.Name):
        return node.func.value.id
    return None


def _walk(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next
