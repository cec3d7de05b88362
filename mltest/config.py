"""Load and validate `mltest.yaml`.

Validation happens before anything trains. Every error names the file, the line, the key path,
what was received and what is allowed; an unknown key gets the nearest valid name.

The file comes from the pull request, so it is read defensively (`mltest.config_yaml`: size
cap, strict UTF-8, no anchors or aliases, bounded nesting, no duplicate keys) and numbers are
strict (no `true` for 1), finite and within sane ranges (`Strict`).
"""

from __future__ import annotations

import importlib
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mltest.config_errors import describe_errors, suggest, unwrap
from mltest.config_yaml import read_yaml
from mltest.errors import ConfigError
from mltest.files import UnsafePathError, ensure_inside, find_repo_root

# Built-in checks, in the order they run: name -> module holding `Settings` and `run`.
CHECK_MODULES: dict[str, str] = {
    "memorization": "mltest.checks.memorization",
    "sanity": "mltest.checks.sanity",
    "regression": "mltest.checks.regression",
    "key_examples": "mltest.checks.key_examples",
    "evaluation": "mltest.checks.evaluation",
}

DEFAULT_CONFIG = "mltest.yaml"

# Limits on values: far above any sensible setting, low enough that a typo or a hostile pull
# request cannot make mltest allocate or loop without end (file limits: mltest.config_yaml).
MAX_INT = 1_000_000  # for integer settings that declare no upper bound of their own
SEED_RANGE = (0, 2**32 - 1)  # what numpy and Lightning accept as a seed
MAX_SEEDS = 100  # every seed is a training run


class Strict(BaseModel):
    """Base for every config section, including every check's `Settings`.

    Unknown keys are errors and values are immutable. Numbers are strict: `true` is not 1 (an
    int is still accepted where a float is expected), NaN and infinity are refused. Integers
    without a bound of their own are capped at `MAX_INT`; a setting named `seed` or `seeds`
    holds seeds in `SEED_RANGE`, at most `MAX_SEEDS` of them.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, strict=True, allow_inf_nan=False
    )

    @model_validator(mode="before")
    @classmethod
    def _yaml_lists_as_tuples(cls, data: Any) -> Any:
        # Strict mode wants a tuple for a tuple field; YAML only has lists.
        if not isinstance(data, dict):
            return data
        fixed = dict(data)
        for name, field in cls.model_fields.items():
            for key in {name, field.alias} & fixed.keys():
                if isinstance(fixed[key], list) and _is_tuple(field.annotation):
                    fixed[key] = tuple(fixed[key])
        return fixed

    @field_validator("*", mode="after")
    @classmethod
    def _sane_size(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name
        if name in ("seed", "seeds") and value is not None:
            seeds = value if isinstance(value, list) else [value]
            if len(seeds) > MAX_SEEDS:
                raise ValueError(
                    f"{len(seeds)} seeds is too many (each is a training run); allowed "
                    f"1..{MAX_SEEDS} seeds"
                )
            low, high = SEED_RANGE
            for seed in seeds:
                if not low <= seed <= high:
                    raise ValueError(
                        f"seed {seed} is out of range; allowed {low}..{high} (what numpy and "
                        "Lightning accept)"
                    )
        elif type(value) is int and abs(value) > MAX_INT:
            # Field(le=..) / Field(ge=..) arrive as metadata objects with an `le` / `ge`.
            bounds = {
                k: getattr(m, k)
                for m in cls.model_fields[name].metadata
                for k in ("ge", "le", "lt")
                if getattr(m, k, None) is not None
            }
            if "le" not in bounds and "lt" not in bounds:
                low = bounds.get("ge", -MAX_INT)
                raise ValueError(f"{value} is out of range; allowed {low}..{MAX_INT}")
        return value


class Component(Strict):
    """A class of the user's, named by import path, and the arguments to build it."""

    class_: str = Field(alias="class", description="import path, `package.module:ClassName`")
    init_args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("class_")
    @classmethod
    def _import_path(cls, value: str) -> str:
        module, sep, attr = value.partition(":")
        if not sep or not module or not attr:
            raise ValueError(
                f"expected an import path like `package.module:ClassName`, got {value!r}"
            )
        return value


class ModelUnderTest(Strict):
    """Which model the prediction checks (regression, key_examples) run.

    `init`: the seeded fresh init; `train`: a short seeded training run of the PR's own code on
    the data module; `checkpoint`: weights from a file (Lightning .ckpt, state dict, safetensors).
    """

    source: Literal["init", "train", "checkpoint"] = "init"
    checkpoint: str | None = Field(None, description="path, relative to the config file")
    epochs: int = Field(5, ge=1, description="epochs of training when source is `train`")
    seed: int = 0
    postprocess: str | None = Field(
        None, description="import path of fn(outputs) -> outputs applied after predict_step"
    )
    input_key: int | str | None = Field(
        None,
        description="the batch element (tuple index or dict key) predict_step gets instead of "
        "the whole batch; a tensor batch is the input itself",
    )

    @model_validator(mode="after")
    def _checkpoint_given(self) -> ModelUnderTest:
        if self.source == "checkpoint" and not self.checkpoint:
            raise ValueError("source `checkpoint` needs `checkpoint: path/to/weights`")
        return self


# `task:` is read by the checks that interpret outputs (regression's label flips, sanity's loss
# at init); `auto` detects it from the loss the training step computes (mltest.checks.task).
_CLASSIFYING = ("classification", "segmentation", "sequence")


class TaskSpec(Strict):
    """`task:`: the model's task kind and, for classifiers, the output axis holding classes."""

    kind: Literal["auto", "classification", "segmentation", "sequence", "regression",
                  "generative"] = "auto"
    class_axis: int | None = Field(None, ge=-8, le=8, description="default: detected")
    classes: int | None = Field(None, ge=2, description="number of classes; default: detected")

    @model_validator(mode="after")
    def _axis_for_classifiers(self) -> TaskSpec:
        if self.kind not in ("auto", *_CLASSIFYING) and {self.class_axis, self.classes} != {None}:
            raise ValueError(
                f"`class_axis` and `classes` describe class scores; kind `{self.kind}` has "
                f"none: drop them, or name one of {', '.join(_CLASSIFYING)}"
            )
        return self


class Config(Strict):
    """The whole `mltest.yaml`."""

    suite: str = "mltest"
    model: Component
    data: Component
    trainer: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    baseline_dir: str = Field(".mltest", description="written by mltest; inside the repository")
    model_under_test: ModelUnderTest = Field(default_factory=ModelUnderTest)
    task: TaskSpec = Field(default_factory=TaskSpec)
    checks: dict[str, Any] = Field(default_factory=dict)

    @field_validator("trainer")
    @classmethod
    def _trainer_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        owned = {"max_epochs", "overfit_batches", "limit_train_batches", "logger", "callbacks"}
        taken = sorted(owned & value.keys())
        if taken:
            raise ValueError(
                f"{', '.join(taken)} cannot be set here: the checks set them; "
                "use the check's own settings (e.g. checks.memorization.max_epochs)"
            )
        mode = value.get("deterministic", "warn")
        if mode not in (True, False, "warn"):  # Lightning would only say so once training
            raise ValueError(
                f"`deterministic` must be true, false or warn (the default: ops without a "
                f"deterministic kernel run with a notice), got {mode!r}"
            )
        return value


class LoadedConfig:
    """A validated config plus where it came from.

    Attributes:
        path: the config file.
        root: its directory; import paths and relative files resolve against it.
        config: the validated top-level settings.
        checks: name -> validated settings of each configured check, in run order.
        lines: key path (a tuple) -> 1-based line in the file, for messages.
    """

    def __init__(
        self, path: Path, config: Config, checks: dict[str, Any], lines: dict | None = None
    ):
        self.path = path
        self.root = path.parent
        self.config = config
        self.checks = checks
        self.lines = lines or {}

    @property
    def baseline_dir(self) -> Path:
        return self.root / self.config.baseline_dir

    @property
    def display_path(self) -> str:
        """The config path as the user would type it: relative to the working dir if inside."""
        try:
            return str(self.path.relative_to(Path.cwd()))
        except ValueError:
            return str(self.path)


def load_config(path: Path | str) -> LoadedConfig:
    """Read, parse and validate a config file.

    Raises:
        ConfigError: naming the file, line and key, with what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: config file not found; create it (see README, 'Configuration') "
            f"or pass --config PATH"
        )
    data, lines = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")

    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(path, exc, Config, lines, ())) from exc

    checks: dict[str, Any] = {}
    for name in config.checks:
        if name not in CHECK_MODULES:
            raise ConfigError(
                f"{path}:{lines.get(('checks', name), '?')}: unknown check `checks.{name}`"
                f"{suggest(name, CHECK_MODULES)}; known checks: {', '.join(CHECK_MODULES)}"
            )
    for name, module in CHECK_MODULES.items():
        if name not in config.checks:
            continue
        settings_cls = importlib.import_module(module).Settings
        raw = config.checks[name]
        try:
            checks[name] = settings_cls.model_validate(raw if raw is not None else {})
        except ValidationError as exc:
            where = ("checks", name)
            raise ConfigError(describe_errors(path, exc, settings_cls, lines, where)) from exc
    return LoadedConfig(path.resolve(), config, checks, lines)


def check_write_paths(loaded: LoadedConfig, *, allow_outside: bool) -> dict[str, Path]:
    """Refuse config paths that mltest writes to when they lead out of the repository.

    The repository is the git top-level that holds the config (found by walking up to a
    `.git`), or the config's own folder outside git. Symbolic links are followed before the
    test, so a link in the repository that points elsewhere is refused too. A path inside
    `.git` is refused even when `allow_outside` is set: a file there can become a hook that
    later jobs on the runner execute.

    `allow_outside` comes from the command line (`--allow-outside-repo`), never from the
    config: the config is part of the pull request under test, so a key in it would let the
    pull request grant itself the exception. The supervisor calls this before any worker
    starts and should use the returned paths, already resolved, for its writes.

    Returns:
        Setting name (e.g. `baseline_dir`) -> resolved path.

    Raises:
        ConfigError: naming the file, line, key, the value, where it resolves, and the fix.
    """
    root = find_repo_root(loaded.root)
    written = {"baseline_dir": (loaded.config.baseline_dir, loaded.baseline_dir)}
    resolved: dict[str, Path] = {}
    for key, (value, path) in written.items():
        where = f"{loaded.path}:{loaded.lines.get((key,), '?')}: `{key}` ({value!r})"
        try:
            target = path.resolve() if allow_outside else ensure_inside(path, root, what=where)
        except UnsafePathError as exc:
            raise ConfigError(str(exc)) from exc
        git_dir = root / ".git"
        if target == git_dir or target.is_relative_to(git_dir):
            raise ConfigError(
                f"{where}: resolves to {target}, inside the repository's .git folder; mltest "
                "never writes there. Use a folder such as `.mltest`"
            )
        resolved[key] = target
    return resolved


def _is_tuple(annotation: Any) -> bool:
    return typing.get_origin(unwrap(annotation)) is tuple
