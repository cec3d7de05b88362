"""The action end to end under `act`, in host mode, on the tabular example, with a real
pull_request event, talking to the loopback GitHub."""

from __future__ import annotations

import json

import pytest

from tests.github.conftest import JOB_TOKEN
from tests.github.e2e import act_repo, action_checkout, run_act

REPO = "Codertocat/Hello-World"
WORKFLOW = """\
name: e2e
on: pull_request
jobs:
  e2e:
    runs-on: ubuntu-latest
    steps:
      - run: cp -a "$SRC/." .
      - id: good
        uses: ./
        with:
          mode: host
          gpus: ""
          working-directory: examples/tabular
          config: mltest.yaml
      - id: broken
        uses: ./
        with:
          mode: host
          gpus: ""
          config: does-not-exist.yaml
          comment-id: broken-suite
      - name: Record the outputs
        if: always()
        env:
          GOOD: ${{ toJSON(steps.good.outputs) }}
          BROKEN: ${{ toJSON(steps.broken.outputs) }}
          OUTCOMES: ${{ steps.good.outcome }} ${{ steps.broken.outcome }}
          PLANTED: ${{ env.MLTEST_PLANTED }}
        run: |
          printf '%s' "$GOOD" > "$OUT_DIR/good.json"
          printf '%s' "$BROKEN" > "$OUT_DIR/broken.json"
          printf '%s' "$OUTCOMES" > "$OUT_DIR/outcomes.txt"
          printf '%s' "$PLANTED" > "$OUT_DIR/planted.txt"
"""

# Appended to the example's model: workflow commands printed by the model code. act runs them
# (`set-env` too) unless the job log has them between ::stop-commands:: and its token.
COMMANDS = """

print("::set-env name=MLTEST_PLANTED::by-the-model", flush=True)
print("::set-output name=result::pass", flush=True)
"""


@pytest.mark.slow
def test_host_mode_under_act(github, tmp_path):
    src = action_checkout(tmp_path / "src", ["tabular"])
    model = src / "examples" / "tabular" / "model.py"
    model.write_text(model.read_text() + COMMANDS)
    repo = act_repo(tmp_path / "repo", WORKFLOW)
    out = tmp_path / "out"
    out.mkdir()

    result = run_act(
        repo,
        {"SRC": str(src), "OUT_DIR": str(out), "GITHUB_API_URL": github.url},
        {"GITHUB_TOKEN": JOB_TOKEN},
    )
    log = result.stdout + result.stderr

    assert result.returncode != 0, "the broken suite must fail the job\n" + log[-3000:]
    assert (out / "outcomes.txt").read_text() == "success failure", log[-3000:]
    good = json.loads((out / "good.json").read_text())
    assert good["result"] == "pass" and int(good["passed"]) >= 1 and good["failed"] == "0"
    assert good["report-path"].endswith("examples/tabular/mltest-report/report.json")
    broken = json.loads((out / "broken.json").read_text())
    assert broken["result"] == "error" and broken["errors"] != "0"
    # act prints each step's job summary as "Summary - ..."
    assert "Summary - ## ✅ mltest: all checks passed — `tabular`" in log
    assert "::error" in log or "does-not-exist.yaml" in log
    assert JOB_TOKEN not in log
    # The model's workflow commands were shown, not run.
    assert "::set-env name=MLTEST_PLANTED::by-the-model" in log
    assert (out / "planted.txt").read_text() == ""

    comments = {c["body"].splitlines()[0]: c for c in github.issue_comments(REPO, 2)}
    assert set(comments) == {
        "<!-- mltest:comment-id=tabular -->",
        "<!-- mltest:comment-id=broken-suite -->",
    }
    assert good["comment-url"] == comments["<!-- mltest:comment-id=tabular -->"]["html_url"]
    assert "all checks passed" in comments["<!-- mltest:comment-id=tabular -->"]["body"]
    assert broken["comment-url"] == comments["<!-- mltest:comment-id=broken-suite -->"]["html_url"]
