"""What the sanity check observes in one step, as plain data (no torch, so the supervisor can
validate a config without importing it)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field


@dataclass
class ParamObs:
    """What happened to one parameter during the step.

    Attributes:
        grad: `ok`, `none` (no gradient at all), `zero` (all-zero) or `nonfinite`.
        grad_max: largest absolute gradient entry (None without a gradient).
        change: largest absolute change of an entry over the step.
    """

    name: str
    shape: tuple[int, ...]
    requires_grad: bool
    in_optimizer: bool
    grad: str
    grad_max: float | None
    change: float

    @property
    def moved(self) -> bool:
        return self.change != 0.0  # NaN counts as moved: the finiteness checks name it


@dataclass
class BufferObs:
    """A buffer expected to move (a norm layer's running statistic, or one named in settings).

    Attributes:
        mode: how its module ran during the step: `train`, `eval` or `never ran`.
    """

    name: str
    module: str
    moved: bool
    mode: str


@dataclass
class StepObs:
    """Everything measured in the step. `nonfinite_module` is the first module (in call order)
    whose output held NaN/inf; `""` means the model's own forward outside any submodule."""

    seed: int
    env_key: str = ""
    loss: float | None = None
    params: list[ParamObs] = field(default_factory=list)
    buffers: list[BufferObs] = field(default_factory=list)
    nonfinite_module: str | None = None
    nonfinite_type: str = ""
    model_name: str = ""
    output_min: float | None = None
    output_max: float | None = None
    output_outside: int = 0
    output_count: int = 0
    output_source: str = ""
    learning_rates: list[float] = field(default_factory=list)
    batch_size: int | None = None
    dependence: dict[int, list[int]] | None = None  # output i -> inputs j != i it depends on
    seconds: float = 0.0
    nondeterministic: list[str] = field(default_factory=list)  # ops without such a kernel


def matches(name: str, patterns: list[str]) -> bool:
    """Whether a parameter or buffer name matches any glob pattern (`backbone.*`)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
