"""Fixed reports for renderer tests: one of each status, with details, hints and notices."""

from __future__ import annotations

from mltest.checks.memorization.hints import Failure, hint
from mltest.report import Case, CheckResult, Report, Status


def mixed_report() -> Report:
    return Report(
        suite="demo",
        checks=[
            CheckResult(
                name="memorization",
                kind="memorization",
                status=Status.FAIL,
                summary="memorized in 27 epochs (median of 27, 27, 26), slower than the "
                "baseline of 14 (+93%; tolerance 25% and 2 epochs)",
                details="| seed | epochs |\n|---|---|\n| 0 | 27 |\n| 1 | 27 |\n| 2 | 26 |",
                # today's advice for a slower count, whatever its wording becomes
                hint=hint(Failure.SLOWER, [], "mltest baseline update --config x.yaml", base=14),
                metrics={"median_epochs": 27, "baseline_epochs": 14},
                cases=[
                    Case("seed 0", Status.PASS),
                    Case("seed 1", Status.PASS),
                    Case("seed 2", Status.PASS),
                ],
                duration_s=1.5,
            ),
            CheckResult(
                name="sanity",
                kind="sanity",
                status=Status.PASS,
                summary="all 6 trainable parameters changed | 0 frozen moved",
                notices=["golden outputs were recorded on cuda; this run is on cpu"],
                duration_s=0.25,
            ),
            CheckResult(
                name="regression",
                kind="regression",
                status=Status.ERROR,
                summary="regression: the model code raised KeyError: 'x' (at model.py:3 in f)",
                details="```\nTraceback...\nKeyError: 'x'\n```",
                hint="Fix the exception.",
            ),
            CheckResult(
                name="key_examples",
                kind="key_examples",
                status=Status.SKIPPED,
                summary="not configured",
            ),
        ],
        metadata={"git_sha": "0123456789abcdef", "device": "cpu", "duration_s": 12.3},
    )


def big_report(checks: int, detail_chars: int) -> Report:
    return Report(
        suite="big",
        checks=[
            CheckResult(
                name=f"check{i}",
                kind="memorization",
                status=Status.FAIL if i % 2 else Status.PASS,
                summary=f"summary {i}",
                details="```\n" + "x" * (detail_chars // 2) + "\n```\n" + "y" * (detail_chars // 2),
                hint="do something",
            )
            for i in range(checks)
        ],
    )
