"""Load and validate `mltest.yaml`.

Validation happens before anything trains. Every error names the file, the line, the key path,
what was received and what is allowed; an unknown key gets the nearest valid name.
"""

from __future__ import annotations

import difflib
import importlib
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mltest.errors import ConfigError

# Built-in checks, in the order they run: name -> module holding `Settings` and `run`.
CHECK_MODULES: dict[str, str] = {
    "memorization": "mltest.checks.memorization",
    "sanity": "mltest.checks.sanity",
    "regression": "mltest.checks.regression",
    "key_examples": "mltest.checks.key_examples",
}

DEFAULT_CONFIG = "mltest.yaml"


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


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

    @model_validator(mode="after")
    def _checkpoint_given(self) -> ModelUnderTest:
        if self.source == "checkpoint" and not self.checkpoint:
            raise ValueError("source `checkpoint` needs `checkpoint: path/to/weights`")
        return self


class Config(Strict):
    """The whole `mltest.yaml`."""

    suite: str = "mltest"
    model: Component
    data: Component
    trainer: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    baseline_dir: str = ".mltest"
    model_under_test: ModelUnderTest = Field(default_factory=ModelUnderTest)
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
        return value


class LoadedConfig:
    """A validated config plus where it came from.

    Attributes:
        path: the config file.
        root: its directory; import paths and relative files resolve against it.
        config: the validated top-level settings.
        checks: name -> validated settings of each configured check, in run order.
    """

    def __init__(self, path: Path, config: Config, checks: dict[str, Any]):
        self.path = path
        self.root = path.parent
        self.config = config
        self.checks = checks

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
    text = path.read_text(encoding="utf-8")
    try:
        lines = _key_lines(yaml.compose(text))
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")

    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc, Config, lines, ())) from exc

    checks: dict[str, Any] = {}
    for name in config.checks:
        if name not in CHECK_MODULES:
            raise ConfigError(
                f"{path}:{lines.get(('checks', name), '?')}: unknown check `checks.{name}`"
                f"{_suggest(name, CHECK_MODULES)}; known checks: {', '.join(CHECK_MODULES)}"
            )
    for name, module in CHECK_MODULES.items():
        if name not in config.checks:
            continue
        settings_cls = importlib.import_module(module).Settings
        raw = config.checks[name]
        try:
            checks[name] = settings_cls.model_validate(raw if raw is not None else {})
        except ValidationError as exc:
            raise ConfigError(
                _describe(path, exc, settings_cls, lines, ("checks", name))
            ) from exc
    return LoadedConfig(path.resolve(), config, checks)


def _key_lines(node: yaml.Node | None, prefix: tuple = ()) -> dict[tuple, int]:
    """Map each key path in the YAML document to its 1-based line number."""
    found: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, key.value)
            found[path] = key.start_mark.line + 1
            found.update(_key_lines(value, path))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = (*prefix, index)
            found[path] = item.start_mark.line + 1
            found.update(_key_lines(item, path))
    return found


def _describe(
    path: Path, exc: ValidationError, model: type[BaseModel], lines: dict, prefix: tuple
) -> str:
    """Turn pydantic's errors into lines that name file, line, key path and the fix."""
    messages = []
    for error in exc.errors():
        loc = (*prefix, *error["loc"])
        key = ".".join(str(part) for part in loc)
        line = _nearest_line(lines, loc)
        where = f"{path}:{line}" if line else str(path)
        kind = error["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_keys(model, error["loc"][:-1])
            messages.append(
                f"{where}: unknown key `{key}`{_suggest(str(loc[-1]), allowed)}; "
                f"allowed here: {', '.join(sorted(allowed)) or '(none)'}"
            )
        elif kind == "missing":
            messages.append(f"{where}: `{key}` is required but missing; add it")
        else:
            got = error.get("input")
            shown = "" if isinstance(got, dict) else f", got {got!r}"
            reason = error["msg"].removeprefix("Value error, ")
            messages.append(f"{where}: `{key}`: {reason}{shown}")
    return "\n".join(messages)


def _nearest_line(lines: dict, loc: tuple) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Names accepted at `loc` inside `model`, following nested config sections."""
    current: Any = model
    for part in loc:
        current = _field_type(current, part)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _field_type(model: Any, part: Any) -> Any:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    for name, field in model.model_fields.items():
        if part in (name, field.alias):
            return _unwrap(field.annotation)
    return None


def _unwrap(annotation: Any) -> Any:
    """`Optional[X]` / `X | None` -> X; other annotations unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _suggest(name: str, candidates) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""
