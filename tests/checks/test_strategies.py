"""Checks that cannot run under a Lightning strategy are refused before anything trains, with
a message naming the check and the strategy; ddp runs them (tests/test_supervisor.py)."""

from __future__ import annotations

import time

import pytest
import yaml

from mltest.checks.base import strategy_of
from mltest.report import Status
from mltest.supervisor import run_suite
from tests.suites import copy_example


def _with_trainer(tmp_path, **trainer):
    config = copy_example("tabular", tmp_path)
    data = yaml.safe_load(config.read_text())
    data["trainer"] = {"accelerator": "cpu", **trainer}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


@pytest.mark.parametrize(
    "trainer, check, expected",
    [
        ({"devices": 2, "strategy": "ddp_spawn"}, "sanity", "starts its ranks as new processes"),
        ({"devices": 2, "strategy": "fsdp"}, "sanity", "flattens and splits the parameters"),
        ({"devices": 2, "strategy": "fsdp"}, "regression", "leaves each rank a shard"),
        ({"devices": 2, "strategy": "fsdp"}, "key_examples", "leaves each rank a shard"),
    ],
)
def test_a_check_that_cannot_run_under_the_strategy_is_refused_before_training(
    tmp_path, trainer, check, expected
):
    config = _with_trainer(tmp_path, **trainer)
    started = time.perf_counter()
    report = run_suite(config, tmp_path / "report", only=[check])
    assert time.perf_counter() - started < 30  # nothing trained
    assert report.verdict.exit_code == 2
    assert not [c for c in report.checks if c.status is not Status.SKIPPED]
    (error,) = report.errors
    assert f"checks.{check} cannot run under `trainer.strategy: {trainer['strategy']}`" in error
    assert expected in error and "strategy: ddp" in error


def test_single_device_and_ddp_are_not_refused(tmp_path):
    config = _with_trainer(tmp_path, devices=1)
    report = run_suite(config, tmp_path / "report", only=["sanity"])
    sanity = {c.name: c for c in report.checks}["sanity"]
    assert not report.errors and sanity.status is Status.PASS, sanity.summary


@pytest.mark.parametrize(
    "trainer, expected",
    [
        ({}, ("auto", 1)),
        ({"devices": 2, "strategy": "ddp"}, ("ddp", 2)),
        ({"devices": [0, 1], "num_nodes": 2, "strategy": "DDP"}, ("ddp", 4)),
        ({"devices": "auto"}, ("auto", 1)),
        ({"devices": "3"}, ("auto", 3)),
    ],
)
def test_strategy_and_process_count_from_the_trainer_settings(trainer, expected):
    assert strategy_of(trainer) == expected
