"""What the sanity check observes in its steps, as plain data (no torch, so the supervisor can
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
    optimizer_params: list[list[str]] = field(default_factory=list)  # names per optimizer
    # with several optimizers: each optimizer step of the judged training_step, in order, as
    # (optimizer index, the parameters that step changed)
    optimizer_steps: list[tuple[int, list[str]]] = field(default_factory=list)
    judged_step: int = 1  # the step judged: the first one with a non-zero learning rate
    zero_lr_steps: int = 0  # steps before it that ran at learning rate 0 (a warm-up)
    batch_size: int | None = None
    dependence: dict[int, list[int]] | None = None  # output i -> inputs j != i it depends on
    seconds: float = 0.0
    nondeterministic: list[str] = field(default_factory=list)  # ops without such a kernel
    eval_unstable: tuple[int, int] | None = None  # (values that differ, of) in two eval passes
    steps: list[StepTrace] = field(default_factory=list)
    schedulers: list[str] = field(default_factory=list)  # scheduler class names
    precision: str = ""
    accumulate: int = 1
    init: InitLossObs | None = None
    gradcheck: GradCheckObs | None = None
    units: list[UnitObs] = field(default_factory=list)
    padding: PaddingObs | None = None
    causal: CausalObs | None = None
    loss_inputs: list[LossInputObs] = field(default_factory=list)  # log-softmax losses' calls
    scale: ScaleObs | None = None  # the first batch's input scale, the normalisation layers
    gan: GanObs | None = None  # a generator and a discriminator, found by how the step uses them
    tying: TyingObs | None = None  # parameters shared under several names
    skipped: list[str] = field(default_factory=list)  # probes that could not run, and why


@dataclass
class StepTrace:
    """One optimizer step of the several taken on the same batch.

    Attributes:
        loss: the loss of the step's training_step.
        grad_norm: global L2 norm of the gradients the optimizer saw (None: no gradient).
        learning_rates: each param group's learning rate when it stepped.
        stale: parameters whose gradient still held the previous step's when this step's
            backward ran (nothing cleared it in between).
        changed: whether any parameter changed in this step.
        scheduler_steps: how many times each scheduler stepped since the previous step.
    """

    index: int
    loss: float | None = None
    grad_norm: float | None = None
    learning_rates: list[float] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    changed: bool = True
    scheduler_steps: list[int] = field(default_factory=list)


@dataclass
class InitLossObs:
    """The loss at init, with what a classifier's loss there should be.

    Attributes:
        classes: C when the model is a classifier (from the batch or `classes`), else None.
        label_entropy: entropy of the batch's labels (nats), the best loss a model that
            ignores its input can reach; ln C for balanced labels.
        source: where the labels were found, for the message.
    """

    loss: float
    classes: int | None = None
    label_entropy: float | None = None
    source: str = ""


@dataclass
class GradCheckObs:
    """Autograd against finite differences in float64, on a copy of the fresh model.

    Attributes:
        errors: relative error of each direction checked (along the gradient, then random).
        wrong: parameters whose own gradient disagrees, in the model's call order.
        right: parameters whose gradient agrees, in call order.
        modules: parameter -> (owning module, its type, position in call order).
    """

    errors: list[float] = field(default_factory=list)
    wrong: list[tuple[str, float]] = field(default_factory=list)  # (parameter, rel. error)
    right: list[str] = field(default_factory=list)
    modules: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class UnitObs:
    """Units of one activation module on the first batch (unit: one non-batch position).

    Attributes:
        kind: `dead` (ReLU-like: never positive) or `saturated` (tanh/sigmoid-like: at a
            limit for every sample).
        share: the share of units that are dead / saturated.
    """

    module: str
    type: str
    kind: str
    share: float
    units: int


@dataclass
class PadRowObs:
    """The pad value's row of one embedding that reads the padded input.

    Attributes:
        padding_idx: the embedding's `padding_idx` (None: not set).
        change: largest change of the row's entries over the steps.
        gradient: largest entry of the gradient the padding positions sent to the row in the
            first step (0 when `padding_idx` is the pad value; None: not measured, an
            EmbeddingBag).
        shared: other modules holding the same weight (an output layer tied to it), whose
            own use moves the row.
    """

    module: str
    padding_idx: int | None
    change: float
    gradient: float | None = None
    shared: list[str] = field(default_factory=list)


@dataclass
class PaddingObs:
    """What adding padding did, and whether the padding embedding row trained.

    Attributes:
        moved: largest change of an output when padding was appended (None: not measured).
        scale: largest absolute output, for the tolerance.
        trimmed: positions cut from the end of the batch's sequences before padding them back
            (0: the padding was appended past the batch's own length).
        embeddings: the embeddings that read the padded input, with their pad rows.
    """

    pad_value: int
    extra: int
    moved: float | None = None
    scale: float = 0.0
    where: str = ""
    trimmed: int = 0
    embeddings: list[PadRowObs] = field(default_factory=list)


@dataclass
class LossInputObs:
    """One call of a log-softmax loss (`cross_entropy`, `nll_loss`) in the first step.

    Attributes:
        where: the model code's `file.py:line in function` that called it.
        class_axis: the axis of its input holding the classes (1, or 0 for one unbatched row).
        kind: `probabilities` or `log-probabilities` (normalised along `axis`), `non-negative`,
            or None: scores.
        low, high: the smallest and largest value of the input (None: not finite).
    """

    loss: str
    where: str = ""
    shape: tuple[int, ...] = ()
    class_axis: int = 1
    kind: str | None = None
    axis: int | None = None
    low: float | None = None
    high: float | None = None
    copies_input: bool = False  # the targets are the token ids forward reads, unshifted
    per_position: bool = False  # it scores each position of a token input (a sequence model)


@dataclass
class ScaleObs:
    """The first batch's input scale and the model's normalisation layers.

    Attributes:
        input_max: the largest absolute value of the batch's floating tensors (None: none).
        where: the batch element holding it.
        norms: the model's normalisation modules (by class name).
    """

    input_max: float | None = None
    where: str = ""
    norms: list[str] = field(default_factory=list)


@dataclass
class GanObs:
    """A discriminator that reads another optimizer's module's output, and what each loss
    asked of its scores (minus the mean gradient at its output: > 0 wants the scores up).

    Attributes:
        d_wants: per discriminator step, (real, generated): how its loss wants the scores of
            the real batch and of the generated samples to move.
        g_wants: per generator step, how its loss wants the scores of its samples to move.
        *_where: the model code's file:line of the optimizer steps and of D's calls.
    """

    generator: str
    discriminator: str
    g_optimizer: int
    d_optimizer: int
    d_wants: list[tuple[float, float]] = field(default_factory=list)
    g_wants: list[float] = field(default_factory=list)
    d_step_where: str = ""
    g_step_where: str = ""
    d_loss_where: str = ""  # the discriminator call its loss reached (real samples)
    g_loss_where: str = ""  # the discriminator call the generator's loss reached


@dataclass
class CausalObs:
    """What changing the input after a position did to the outputs at or before it (eval mode).

    Attributes:
        length: positions of the input (its axis 1).
        tried: the positions t tried, in order: the input after t was changed each time.
        after: the t whose change leaked (None: no leak).
        position: the first output position <= `after` that moved.
        change: how far outputs at or before `after` moved; scale: the largest output.
        module, module_type: the first module (in the order calls finish) whose output at
            positions <= `after` moved; `inside`: its own input had not moved (the module
            itself mixes positions), else the code of `parent` between its submodules did,
            after `previous` (the last of its submodules to finish unmoved).
        sees: which of the next position and the last one, changed alone, moved the output at
            `position`.
    """

    length: int = 0
    tried: list[int] = field(default_factory=list)
    after: int | None = None
    position: int | None = None
    change: float = 0.0
    scale: float = 0.0
    module: str = ""
    module_type: str = ""
    inside: bool = False
    parent: str = ""
    parent_type: str = ""
    previous: str = ""
    previous_type: str = ""
    sees: list[int] = field(default_factory=list)  # of the next and the last position


def matches(name: str, patterns: list[str]) -> bool:
    """Whether a parameter or buffer name matches any glob pattern (`backbone.*`)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


@dataclass
class TyingObs:
    """Parameters shared under several names (weight tying), and where modules are built.

    Attributes:
        shared: each group of names that are one tensor, in `named_parameters` order.
        inits: module path -> `file.py:12` of its class's `__init__` (the user's files only).
    """

    shared: list[list[str]] = field(default_factory=list)
    inits: dict[str, str] = field(default_factory=dict)
