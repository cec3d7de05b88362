"""Key examples: the table loader, the judging rules, and the check on a real tiny model.

The model is a small MLP trained once (module fixture) on generated rows whose label is
`x0 + x1 > 3`; the inputs are normalised in `collate` with MEAN/STD constants. Broken variants
(a changed constant, an off-by-one label map, a model that ignores x0) must fail; a rerun, a
different batch size and fewer threads must pass.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch
import yaml

from mltest.checks.key_examples import Settings
from mltest.checks.key_examples.judging import judge
from mltest.checks.key_examples.predictions import Predictions
from mltest.checks.key_examples.report import failing_in_order
from mltest.checks.key_examples.table import load_examples
from mltest.checks.key_examples.verdict import tag_stats
from mltest.errors import CheckFailed, ConfigError, ProjectError
from mltest.report import Status
from mltest.supervisor import run_suite
from tests.suites import forget_project_modules, write_suite

# --- loader ----------------------------------------------------------------------------------

CSV = """\
id,kind,input,expected,group,direction,target,tolerance,top_k,tags
a,mft,good film,pos,,,,,,vocab; easy
b,mft,0.5,0.5,,,pos,0.1,,
c,mft,meh,pos,,,,,2,
r,inv,alice liked it,,names,,,,,robustness
s,inv,bob liked it,,names,,,,,robustness
d0,dir,good,,more,,pos,,,
d1,dir,very good,,more,up,pos,0.01,,
"""


def load(tmp_path, text, name="ex.csv"):
    (tmp_path / name).write_text(textwrap.dedent(text))
    return load_examples(name, root=tmp_path, project=None, key="checks.key_examples.examples")


def test_csv_rows_become_examples_of_all_three_kinds(tmp_path):
    examples = load(tmp_path, CSV)
    assert [e.kind for e in examples] == ["mft", "mft", "mft", "inv", "inv", "dir", "dir"]
    assert examples[0].tags == ("vocab", "easy") and examples[0].expected == "pos"
    assert examples[1].expected == 0.5 and examples[1].tolerance == 0.1
    assert examples[2].top_k == 2
    assert examples[6].direction == "up" and examples[6].target == "pos"
    assert examples[4].where == "ex.csv line 6 (id `s`)"


def test_jsonl_and_parquet_read_like_csv(tmp_path):
    rows = [
        {"id": "a", "kind": "mft", "input": [1.0, 2.0], "expected": 1, "tags": ["x", "y"]},
        {"id": "b", "kind": "inv", "input": [1.0, 2.1], "group": "g"},
        {"id": "c", "kind": "inv", "input": [1.0, 2.2], "group": "g"},
    ]
    (tmp_path / "ex.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    jsonl = load_examples("ex.jsonl", root=tmp_path, project=None, key="k")
    assert jsonl[0].input == [1.0, 2.0] and jsonl[0].expected == "1"
    assert jsonl[0].tags == ("x", "y")
    import pandas as pd

    pd.DataFrame(rows).to_parquet(tmp_path / "ex.parquet")
    parquet = load_examples("ex.parquet", root=tmp_path, project=None, key="k")
    assert [e.id for e in parquet] == ["a", "b", "c"] and parquet[0].expected == "1"
    assert list(parquet[0].input) == [1.0, 2.0]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("id,kind,input,expectd\na,mft,x,1\n", ["unknown column", "`expectd`", "`expected`"]),
        ("id,input,expected\na,x,1\n", ["column `kind` is missing"]),
        ("id,kind,expected\na,mft,1\n", ["no input column"]),
        ("id,kind,input,expected\na,mft,x,1\nb,mtf,y,1\n",
         ["ex.csv line 3 (id `b`), column `kind`", "'mtf'", "mft, inv, dir"]),
        ("id,kind,input,expected\na,mft,x,\n", ["line 2 (id `a`), column `expected`"]),
        ("id,kind,input,expected\na,mft,x,1\na,mft,y,1\n", ["id `a` is used twice"]),
        ("id,kind,input,group\na,inv,x,g\n", ["group `g` has one example"]),
        ("id,kind,input,group,direction\na,dir,x,g,up\nb,dir,y,g,down\n",
         ["column `direction`", "reference"]),
        ("id,kind,input,group,direction\na,dir,x,g,\nb,dir,y,g,sideways\n",
         ["(id `b`), column `direction`", "up, down"]),
        ("id,kind,input,expected,tolerance\na,mft,x,1,wide\n", ["column `tolerance`"]),
    ],
)
def test_bad_tables_name_file_row_and_column(tmp_path, text, expected):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    for part in expected:
        assert part in str(err.value)
    assert "ex.csv" in str(err.value)


def test_unknown_source_form_says_what_is_allowed(tmp_path):
    with pytest.raises(ConfigError, match=r"`k: ex.tsv`: give a table file ending in .csv"):
        load_examples("ex.tsv", root=tmp_path, project=None, key="k")


def test_missing_file_names_the_key_and_path(tmp_path):
    with pytest.raises(ConfigError, match=r"checks.key_examples.examples: nope.csv.*not found"):
        load_examples("nope.csv", root=tmp_path, project=None, key="checks.key_examples.examples")


# --- judging (pure) --------------------------------------------------------------------------


def test_judge_applies_each_kind(tmp_path):
    examples = load(tmp_path, CSV)
    scores = np.array([
        [0.2, 0.8],  # a: pos, right
        [0.45, 0.55],  # b: value of pos 0.55, within 0.1 of 0.5
        [0.7, 0.3],  # c: pos ranks 2nd: in top 2
        [0.1, 0.9],  # r: reference
        [0.6, 0.4],  # s: label flipped -> invariance fails
        [0.3, 0.7],  # d0: reference
        [0.295, 0.705],  # d1: up by 0.005 only, needs more than 0.01 -> fails
    ])
    preds = Predictions(["pos", "pos", "neg", "pos", "neg", "pos", "pos"], scores, None,
                        ["neg", "pos"])
    outcomes = judge(examples, preds)
    assert [o.passed for o in outcomes] == [True, True, True, True, False, True, False]
    assert [o.tested for o in outcomes] == [True, True, True, False, True, False, True]
    assert "same as `r`: pos" in outcomes[4].expected and outcomes[4].got == "neg"
    stats = {s.tag: (s.cases, s.failures) for s in tag_stats(outcomes, _settings())}
    assert stats == {"easy": (1, 0), "vocab": (1, 0), "robustness": (1, 1), "(untagged)": (3, 1)}


def test_failures_are_ordered_new_first_then_by_confidence(tmp_path):
    examples = load(tmp_path, "id,kind,input,expected\n"
                    + "".join(f"{i},mft,x,pos\n" for i in "abcd"))
    preds = Predictions(["neg"] * 4, np.array([[0.6, 0.4], [0.9, 0.1], [0.7, 0.3], [0.99, 0.01]]),
                        None, ["neg", "pos"])
    outcomes = judge(examples, preds)
    outcomes[0].new_failure = True
    assert [o.example.id for o in failing_in_order(outcomes)] == ["a", "d", "b", "c"]


@pytest.mark.parametrize(
    "outputs, names, labels, scores, values",
    [
        ([torch.tensor([[0.1, 0.9], [0.8, 0.2]])], ["neg", "pos"], ["pos", "neg"], True, False),
        ([torch.tensor([[0.1, 0.9]]), torch.tensor([[0.7, 0.3]])], None, ["1", "0"], True,
         False),
        ([torch.tensor([2, 0])], ["a", "b", "c"], ["c", "a"], False, False),
        ([["cat", "dog"]], None, ["cat", "dog"], False, False),
        ([torch.tensor([0.5, 1.5])], None, ["", ""], False, True),
        ([{"label": ["x", "y"], "scores": torch.tensor([[0.6, 0.4], [0.3, 0.7]])}],
         ["x", "y"], ["x", "y"], True, False),
    ],
    ids=["scores", "scores-no-names", "indices", "names", "values", "dict"],
)
def test_post_processed_outputs_of_each_accepted_shape(outputs, names, labels, scores, values):
    preds = Predictions.from_outputs(outputs, names, 2)
    assert preds.labels == labels
    assert (preds.scores is not None) is scores and (preds.values is not None) is values
    if scores:
        assert preds.confidences == [preds.scores[i].max() for i in range(2)]


def test_label_index_outside_the_classes_names_the_label_map():
    with pytest.raises(CheckFailed, match="index 2 is outside the 2 classes.*label map"):
        Predictions.from_outputs([torch.tensor([2, 0])], ["neg", "pos"], 2)


def test_a_changed_number_of_classes_is_a_failure_of_the_model():
    with pytest.raises(CheckFailed, match="now gives one value per example but `labels` names 2"):
        Predictions.from_outputs([torch.tensor([[0.3], [0.9]])], ["neg", "pos"], 2)
    with pytest.raises(CheckFailed, match="now scores 3 class.*`labels` names 2"):
        Predictions.from_outputs([torch.rand(2, 3)], ["neg", "pos"], 2)
    scores = Predictions.from_outputs([torch.tensor([[0.3, 0.7], [0.9, 0.1]])], ["neg", "pos"], 2)
    assert scores.labels == ["pos", "neg"]


def test_one_output_per_example_is_required():
    with pytest.raises(ProjectError, match="returned 1 outputs for 2 examples"):
        Predictions.from_outputs([torch.tensor([[0.1, 0.9]])], None, 2)


def _settings(**extra):
    return Settings(examples="x.csv", collate="data:collate", **extra)


# --- the check on a real tiny model ----------------------------------------------------------

DATA = """\
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

MEAN, STD = 1.0, 2.0


def make(rows, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = 1.0 + 2.0 * torch.randn(rows, 4, generator=gen)
    return x, (x[:, 0] + x[:, 1] > 3.0).long()


def collate(inputs):
    return (torch.tensor(inputs, dtype=torch.float32) - MEAN) / STD


def collate_old_mean(inputs):  # the bug: a normalisation constant changed in the data path
    return (torch.tensor(inputs, dtype=torch.float32) - 0.0) / STD


def collate_strict(inputs):
    if any(len(row) != 4 for row in inputs):
        raise ValueError("every row needs 4 features")
    return collate(inputs)


class Data(pl.LightningDataModule):
    def setup(self, stage=None):
        x, y = make(2048)
        self.train = TensorDataset((x - MEAN) / STD, y)

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=128, shuffle=True)
"""

MODEL = """\
import pytorch_lightning as pl
import torch
from torch import nn

NAMES = ["neg", "pos"]


class Model(pl.LightningModule):
    def __init__(self, ignore_feature=None):
        super().__init__()
        self.ignore_feature = ignore_feature
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))

    def forward(self, x):
        if self.ignore_feature is not None:  # the bug: a feature never reaches the network
            x = x.clone()
            x[:, self.ignore_feature] = 0.0
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return torch.softmax(self(batch), dim=1)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.05)


def names(probs):
    return {"label": [NAMES[i] for i in probs.argmax(1).tolist()], "scores": probs}


def names_one_based(probs):  # the bug: a label map written for 1-based class ids
    return {"label": [NAMES[i - 1] for i in probs.argmax(1).tolist()], "scores": probs}
"""

EXAMPLES = """\
def make():
    rows = []
    for i, (x0, x1, label) in enumerate([(4, 4, "pos"), (3, 2.5, "pos"), (2.5, 2.5, "pos"),
                                         (-2, -2, "neg"), (0, 0, "neg"), (1, 1, "neg"),
                                         (0.5, 1.0, "neg"), (5, -1, "pos")]):
        rows.append({"id": f"mft-{i}", "kind": "mft", "input": [x0, x1, 1.0, 1.0],
                     "expected": label, "tags": "clear" if abs(x0 + x1 - 3) > 2 else "near"})
    for name, base in (("noise-pos", [3.5, 3.5]), ("noise-neg", [0.0, 0.5])):
        rows.append({"id": f"{name}-ref", "kind": "inv", "input": [*base, 1.0, 1.0],
                     "group": name, "tags": "noise"})
        for j, (a, b) in enumerate([(0.3, -0.3), (-0.4, 0.2), (1.5, 1.5)]):
            rows.append({"id": f"{name}-{j}", "kind": "inv", "input": [*base, 1 + a, 1 + b],
                         "group": name, "tags": "noise"})
    for f in (0, 1):
        base = [1.5, 1.5, 1.0, 1.0]
        rows.append({"id": f"x{f}-ref", "kind": "dir", "input": base, "group": f"x{f}",
                     "target": "pos", "tags": "monotonic"})
        for step, direction in ((0.5, "up"), (-0.5, "down"), (1.0, "up")):
            moved = list(base)
            moved[f] += step
            rows.append({"id": f"x{f}{step:+}", "kind": "dir", "input": moved,
                         "group": f"x{f}", "direction": direction, "target": "pos",
                         "tags": "monotonic"})
    return rows
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A trained checkpoint (plain seeded loop, once) shared by every variant below."""
    directory = tmp_path_factory.mktemp("tiny")
    config = _suite(directory)
    import sys

    sys.path.insert(0, str(directory))
    for name in ("data", "model"):  # another project's data.py may be loaded in this process
        sys.modules.pop(name, None)
    try:
        from data import MEAN, STD, make  # noqa: I001  (the project's own module)
        from model import Model
    finally:
        sys.path.remove(str(directory))
    torch.manual_seed(0)
    model = Model()
    x, y = make(1024)
    x = (x - MEAN) / STD
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny full-batch steps: threads only add overhead
    try:
        for _ in range(150):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    torch.save(model.state_dict(), directory / "weights.pt")
    forget_project_modules(directory)  # the check imports the project afresh
    return config


def _suite(directory, *, model_args=None, postprocess="model:names", **settings):
    checks = {"key_examples": {"examples": "examples:make", "collate": "data:collate",
                               "labels": ["neg", "pos"], **settings}}
    config = write_suite(
        directory,
        model_src=MODEL,
        data_src=DATA,
        extra_files={"examples.py": EXAMPLES},
        model_under_test={"source": "checkpoint", "checkpoint": "weights.pt",
                          "postprocess": postprocess},
        checks=checks,
    )
    data = yaml.safe_load(config.read_text())
    data["model"]["init_args"] = model_args or {}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def _run(config, tmp_path, update=False):
    report = run_suite(config, tmp_path / "report", update_baselines=update,
                       only=["key_examples"])
    assert not report.errors, report.errors
    return next(c for c in report.checks if c.name == "key_examples")


@pytest.fixture
def variant(project, tmp_path):
    """Write a variant of the project next to a copy of the trained weights and baseline."""
    import shutil

    def make(**changes):
        directory = tmp_path / "variant"
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir()
        shutil.copy(project.parent / "weights.pt", directory / "weights.pt")
        if (project.parent / ".mltest").exists():
            shutil.copytree(project.parent / ".mltest", directory / ".mltest")
        return _suite(directory, **changes)

    return make


@pytest.fixture(scope="module")
def recorded(project, tmp_path_factory):
    """The baseline of passing examples, recorded once on the healthy project."""
    result = _run(project, tmp_path_factory.mktemp("rec"), update=True)
    assert result.status is Status.PASS, result.summary + result.details
    return result


def test_healthy_model_passes_every_example(recorded, project, tmp_path):
    result = _run(project, tmp_path)
    assert result.status is Status.PASS, result.summary + result.details
    assert result.metrics["cases"] == 8 + 6 + 6 and result.metrics["failures"] == 0
    assert len(result.cases) == 8 + 8 + 8  # one case per example, references included
    assert "| clear |" in result.details and not result.notices


@pytest.mark.parametrize(
    "harmless",
    [
        pytest.param({}, id="rerun"),
        pytest.param({"batch_size": 3}, id="batch-size-3"),
        pytest.param({"threads": 1}, id="one-cpu-thread"),
    ],
)
def test_harmless_changes_pass_with_identical_outcomes(recorded, variant, tmp_path, harmless):
    harmless = dict(harmless)
    threads = harmless.pop("threads", None)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        result = _run(variant(**harmless), tmp_path)
    finally:
        torch.set_num_threads(before)
    assert result.status is Status.PASS, result.summary + result.details
    assert [(c.name, c.status) for c in result.cases] == [
        (c.name, c.status) for c in recorded.cases
    ]


def test_changed_normalisation_constant_in_collate_is_caught(recorded, variant, tmp_path):
    result = _run(variant(collate="data:collate_old_mean"), tmp_path)
    assert result.status is Status.FAIL
    assert "`near`" in result.summary and "passed in the baseline" in result.summary
    failing = [c.name for c in result.cases if c.status is Status.FAIL]
    assert "mft-5" in failing and "mft-6" in failing  # negatives near the boundary flip
    assert all(c.message.startswith("new failure") for c in result.cases
               if c.status is Status.FAIL)


def test_off_by_one_label_map_in_postprocess_is_caught(recorded, variant, tmp_path):
    result = _run(variant(postprocess="model:names_one_based"), tmp_path)
    assert result.status is Status.FAIL
    assert result.metrics["tags"]["clear"]["failures"] == result.metrics["tags"]["clear"]["cases"]
    table = result.details.split("**Failing examples**")[1]
    assert "| `mft-0` 🆕 | mft | [4, 4, 1, 1] | pos | neg |" in table


def test_model_that_ignores_a_feature_fails_directional_examples(recorded, variant, tmp_path):
    result = _run(variant(model_args={"ignore_feature": 0}), tmp_path)
    assert result.status is Status.FAIL
    failing = {c.name for c in result.cases if c.status is Status.FAIL}
    assert {"x0+0.5", "x0-0.5", "x0+1.0"} <= failing
    assert not {"x1+0.5", "x1-0.5", "x1+1.0"} & failing  # x1 still moves the score
    assert "Δ +0" in result.details  # the score did not move at all


def test_no_baseline_is_a_notice_unless_required(project, variant, tmp_path):
    for required, status in ((False, Status.PASS), (True, Status.FAIL)):
        config = variant(require_baseline=required)
        (config.parent / ".mltest" / "baselines.json").unlink(missing_ok=True)
        result = _run(config, tmp_path)
        assert result.status is status, result.summary
        assert any("no baseline" in n for n in result.notices)


def test_allowed_failure_rate_per_tag(recorded, variant, tmp_path):
    result = _run(variant(collate="data:collate_old_mean",
                          tag_failure_rates={"near": 1.0, "noise": 1.0, "monotonic": 1.0,
                                             "clear": 1.0}), tmp_path)
    assert result.status is Status.PASS
    assert any("passed in the baseline fail now" in n for n in result.notices)


def _refused(config, tmp_path, checks=("key_examples",)):
    """The suite is refused before any check starts: one error, no check result."""
    report = run_suite(config, tmp_path / "report", only=list(checks))
    ran = [(c.name, c.status, c.summary) for c in report.checks if c.status is not Status.SKIPPED]
    assert not ran, ran
    assert len(report.errors) == 1, report.errors
    assert report.verdict.exit_code == 2
    return report.errors[0]


def test_collate_that_raises_names_the_example_and_column(variant, tmp_path):
    config = variant(collate="data:collate_strict")
    source = config.parent / "examples.py"
    source.write_text(source.read_text().replace(
        "    return rows", '    rows[2]["input"] = [2.5, 2.5, 1.0]\n    return rows'))
    error = _refused(config, tmp_path)
    assert "checks.key_examples.collate: data:collate_strict" in error
    assert "(id `mft-2`), column `input`" in error
    assert "every row needs 4 features" in error


@pytest.mark.parametrize(
    "table, expected",
    [
        (None, ["checks.key_examples.examples: missing.csv", "not found"]),
        ("id,kind,input\na,sideways,x\n", ["ex.csv line 2 (id `a`), column `kind`"]),
        ("id,knd,input\na,mft,x\n", ["unknown column", "`knd`", "did you mean `kind`"]),
        ("id,kind,input,expected\na,mft,x,postive\n",
         ["ex.csv line 2 (id `a`), column `expected`", "`postive` is not a class",
          "did you mean `pos`?"]),
    ],
)
def test_bad_table_is_refused_before_any_check_trains(variant, tmp_path, table, expected):
    config = variant(examples="missing.csv" if table is None else "ex.csv")
    if table is not None:
        (config.parent / "ex.csv").write_text(table)
    error = _refused(config, tmp_path)
    assert error.lstrip("`").startswith("checks.key_examples")
    for part in expected:
        assert part in error


def test_checklist_kind_names_are_accepted(tmp_path):
    examples = load(tmp_path, "id,kind,input,expected,group,direction\n"
                    "a,invariance,x,,g,\nb,Invariance,y,,g,\nc,directional,x,,h,\n"
                    "d,directional,y,,h,up\n")
    assert [e.kind for e in examples] == ["inv", "inv", "dir", "dir"]


@pytest.mark.slow
def test_text_example_passes_and_catches_a_tokeniser_that_stops_lowercasing(tmp_path):
    from tests.suites import copy_example

    config = copy_example("text_classifier", tmp_path)
    healthy = _run(config, tmp_path)
    assert healthy.status is Status.PASS, healthy.summary + healthy.details
    assert healthy.metrics["cases"] == 18 and healthy.metrics["failures"] == 0
    data = config.parent / "data.py"
    data.write_text(data.read_text().replace("text.lower()", "text"))
    forget_project_modules(config.parent)  # same directory, edited file: import it again
    broken = _run(config, tmp_path)
    assert broken.status is Status.FAIL
    failing = {c.name for c in broken.cases if c.status is Status.FAIL}
    assert "inv-case-upper" in failing, broken.details
