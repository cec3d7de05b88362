"""Importing the user's code: paths relative to the config, one project's modules never leak."""

from __future__ import annotations

import pytest

from mltest.config import load_config
from mltest.project import Project
from tests.suites import forget_project_modules, write_suite

MODEL = """
from data import SCALE

class Model:
    scale = SCALE
"""

DATA = """
SCALE = {scale}

class Data:
    pass
"""


@pytest.fixture(autouse=True)
def forget_test_projects(tmp_path):
    """Leave no `model`/`data` module behind for tests that import projects by hand."""
    yield
    forget_project_modules(tmp_path)


def project_with_scale(directory, scale):
    config = write_suite(directory, model_src=MODEL, data_src=DATA.format(scale=scale))
    return Project(load_config(config))


def test_two_projects_in_one_process_each_get_their_own_modules(tmp_path):
    first = project_with_scale(tmp_path / "one", 1)
    second = project_with_scale(tmp_path / "two", 2)
    assert first._model_cls.scale == 1
    assert second._model_cls.scale == 2  # `from data import SCALE` read two/data.py


def test_installed_packages_are_not_reimported(tmp_path):
    import json

    before = json
    project_with_scale(tmp_path / "one", 1)
    project_with_scale(tmp_path / "two", 2)
    import json as after

    assert after is before
