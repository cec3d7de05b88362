"""Import and build the user's LightningModule and LightningDataModule from the config.

Import paths resolve against the config file's directory, which is put first on `sys.path`
(as pytest does with its rootdir), so a repository needs no install step to be tested.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mltest.config import Component, LoadedConfig
from mltest.errors import ProjectError, describe
from mltest.seeding import seed_all


def import_object(path: str, *, key: str, root: Path) -> Any:
    """Import `package.module:attr` with `root` on sys.path.

    Args:
        path: the import path from the config.
        key: the config key it came from, for messages (e.g. `model.class`).
        root: the directory the path is relative to.

    Raises:
        ProjectError: naming the key, the path and what went wrong.
    """
    module_name, _, attr = path.partition(":")
    _put_first_on_path(root)
    _forget_modules_from_elsewhere(root)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ProjectError(
                f"`{key}: {path}`: no module named `{exc.name}` under {root}; import paths are "
                f"relative to the config file's directory"
            ) from exc
        raise ProjectError(
            f"`{key}: {path}`: importing `{module_name}` failed: {describe(exc)}"
        ) from exc
    except Exception as exc:
        raise ProjectError(
            f"`{key}: {path}`: importing `{module_name}` raised {describe(exc)}"
        ) from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            raise ProjectError(f"`{key}: {path}`: `{module_name}` has no `{part}`{hint}")
        obj = getattr(obj, part)
    return obj


_PROJECT_ROOTS: set[Path] = set()  # config directories this process has imported from


def _put_first_on_path(root: Path) -> None:
    root_str = str(root)
    if root_str in sys.path:
        sys.path.remove(root_str)
    sys.path.insert(0, root_str)
    importlib.invalidate_caches()


def _forget_modules_from_elsewhere(root: Path) -> None:
    """Drop modules that were imported from another project's config directory.

    Projects commonly name their files `model.py` and `data.py`; without this, a second
    project in the same process (tests, benchmarks, merged runs) would silently get the first
    one's code, including modules that its own files import. Installed packages are never
    touched.
    """
    root = root.resolve()
    _PROJECT_ROOTS.add(root)
    others = tuple(f"{r}{os.sep}" for r in _PROJECT_ROOTS if not root.is_relative_to(r))
    if not others:
        return
    # Plain prefix tests: modules found through a root on sys.path carry that (resolved) root
    # in __file__, and this runs for every import path in the config, so no per-module I/O.
    own = f"{root}{os.sep}"
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if isinstance(origin, str) and origin.startswith(others) and not origin.startswith(own):
            del sys.modules[name]


class Project:
    """The user's code as the checks see it: fresh seeded models and data on demand."""

    def __init__(self, loaded: LoadedConfig):
        self.loaded = loaded
        root = loaded.root
        self._model_cls = import_object(loaded.config.model.class_, key="model.class", root=root)
        self._data_cls = import_object(loaded.config.data.class_, key="data.class", root=root)

    def new_model(self, seed: int):
        """A freshly initialised model, seeded so that every run starts from the same weights."""
        seed_all(seed)
        return _build(self._model_cls, self.loaded.config.model, "model")

    def new_datamodule(self, seed: int = 0):
        """A fresh data module, set up for fitting; seeded so generated data is stable."""
        seed_all(seed)
        datamodule = _build(self._data_cls, self.loaded.config.data, "data")
        for hook, args in (("prepare_data", ()), ("setup", ("fit",))):
            _call(getattr(datamodule, hook, None), args, f"data.class `{hook}`")
        return datamodule

    def fresh_start(self, seed: int, batches: int) -> tuple[Any, list]:
        """A fresh seeded model and the first `batches` training batches, in dataset order.

        Data first, then the model, each seeded: the model's init does not depend on how
        much randomness the data module used.
        """
        datamodule = self.new_datamodule(seed)
        fixed = first_batches(
            datamodule.train_dataloader, batches, what="data.class `train_dataloader`"
        )
        return self.new_model(seed), fixed

    def resolve(self, path: str, *, key: str) -> Any:
        """Import another object named in the config (a collate or post-processing function)."""
        return import_object(path, key=key, root=self.loaded.root)


def _build(cls: type, component: Component, key: str):
    try:
        return cls(**component.init_args)
    except Exception as exc:
        raise ProjectError(
            f"`{key}.class: {component.class_}`: building it with init_args "
            f"{component.init_args!r} raised {describe(exc)}"
        ) from exc


def _call(fn: Callable | None, args: tuple, what: str) -> None:
    if fn is None:
        return
    try:
        fn(*args)
    except Exception as exc:
        raise ProjectError(f"{what} raised {describe(exc)}") from exc


def first_batches(dataloader_fn: Callable, count: int, *, what: str) -> list:
    """The first `count` batches of a dataloader, in dataset order (no shuffling).

    A shuffling DataLoader is rebuilt over the same dataset with a sequential order, so the
    batches are the same on every run; its collate function and batch size are kept.
    """
    from torch.utils.data import DataLoader

    try:
        loader = dataloader_fn()
    except Exception as exc:
        raise ProjectError(f"{what} raised {describe(exc)}") from exc
    if isinstance(loader, DataLoader) and loader.batch_size is not None:
        loader = DataLoader(
            loader.dataset,
            batch_size=loader.batch_size,
            shuffle=False,
            collate_fn=loader.collate_fn,
            drop_last=loader.drop_last,
            num_workers=0,  # a few batches: workers would cost more than they save
        )
    batches = []
    try:
        for batch in loader:
            batches.append(batch)
            if len(batches) == count:
                break
    except Exception as exc:
        raise ProjectError(f"{what}: iterating it raised {describe(exc)}") from exc
    if len(batches) < count:
        raise ProjectError(
            f"{what} yielded {len(batches)} batch(es) but {count} were asked for; "
            "lower the check's `batches` setting or give the loader more data"
        )
    return batches
