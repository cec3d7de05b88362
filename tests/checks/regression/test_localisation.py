"""Moved outputs are traced to the module where the forward pass first changed.

The segmentation example's UNet (`DoubleConv`, `Down`, `Up`, written like Lightning's own) is
traced at its seeded fresh init, as the check traces a model it trains, on the golden side and
after a pull request's edit; each bug is named at its module, and renames and a harmless
restructuring map module to module with nothing moved.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from mltest.checks.regression.fingerprints import FingerprintError, Stats, encode, read
from mltest.checks.regression.locate import CROSS_ENVIRONMENT, locate, stats_change
from mltest.checks.regression.trace import trace_module
from tests.suites import edited_example

STRIDE = (
    "nn.ConvTranspose2d(in_ch, in_ch // 2, kernel_size=2, stride=2)",
    "nn.ConvTranspose2d(in_ch, in_ch // 2, kernel_size=2, stride=1)",
)
WRONG_SKIP = ("torch.cat([x2, x1], dim=1)", "torch.cat([x2, x2], dim=1)")
LABEL_MAP = ("        return self(img)\n", "        return self(img)[:, [0, 2, 1]]\n")
RENAME = ("self.upsample", "self.up")
# Down without its Sequential: the same layers created in the same order, called directly.
UNWRAPPED = (
    "        self.net = nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2), "
    "DoubleConv(in_ch, out_ch))\n\n    def forward(self, x):\n        return self.net(x)",
    "        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)\n"
    "        self.conv = DoubleConv(in_ch, out_ch)\n\n"
    "    def forward(self, x):\n        return self.conv(self.pool(x))",
)


def fresh_model(example, directory, cls, edits=()):
    """An example's model class, edited, built at seed 0 (as the check's fresh init is)."""
    config = edited_example(example, directory, edits)
    path = config.parent / "model.py"
    spec = importlib.util.spec_from_file_location(f"{example}_{directory.name}", path)
    source = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(source)
    torch.manual_seed(0)
    return getattr(source, cls)()


def unet_trace(directory, *edits, device="cpu"):
    """The example's UNet, edited, at its seeded fresh init, traced on 6 fixed images in
    batches of 4 (the last batch shorter, as the fixed inputs' often is)."""
    model = fresh_model("segmentation", directory, "SegModel", edits).to(device)
    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return trace_module(model, [images[:4], images[4:]], "fresh init (seed 0)")


def mlp_trace(directory, *edits):
    """The tabular example's MLP at its seeded fresh init, traced on 16 rows."""
    model = fresh_model("tabular", directory, "TabularMLP", edits)
    rows = torch.randn(16, 8, generator=torch.Generator().manual_seed(1))
    return trace_module(model, [rows], "fresh init (seed 0)")


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """The golden side's trace, read back from its file as a failing run reads it."""
    path = tmp_path_factory.mktemp("golden") / "cpu.modules.json"
    path.write_bytes(encode(unet_trace(path.parent / "model"), "sha256:golden"))
    return read(path, "sha256:golden")


def test_a_transposed_convolution_with_stride_1_is_named_with_its_shape(golden, tmp_path):
    found = locate(golden, unet_trace(tmp_path, STRIDE))
    assert found.metrics["first_moved"] == "net.layers.3.upsample"
    assert "the output of `net.layers.3.upsample` (ConvTranspose2d) on an unchanged input " in (
        found.summary
    )
    assert "shape [4, 16, 16, 16] → [4, 16, 9, 9]" in found.summary
    assert "stride" in found.hint and "`net.layers.3.upsample`" in found.hint
    assert "⟵ first moved" in found.details


def test_a_skip_connection_with_the_wrong_tensor_is_named_in_up_forward(golden, tmp_path):
    found = locate(golden, unet_trace(tmp_path, WRONG_SKIP))
    assert found.metrics["first_moved"] == "net.layers.3.conv"
    assert "the input of `net.layers.3.conv` (DoubleConv)" in found.summary
    assert "the change is in Up.forward (`net.layers.3`) before it calls `conv`" in found.summary
    assert found.hint.startswith("Check Up.forward first") and "skip connection" in found.hint


def test_a_label_map_in_predict_step_is_named_after_the_model(golden, tmp_path):
    # Swapping two classes keeps every mean and spread: the position-weighted sum moves.
    found = locate(golden, unet_trace(tmp_path, LABEL_MAP))
    assert found.metrics["first_moved"] == "<predict_step>"
    assert "every module call of the model matches the golden trace" in found.summary
    assert "label map" in found.hint


def test_preprocessing_changed_in_predict_step_is_named_before_the_model(golden, tmp_path):
    scaled = ("        return self(img)\n", "        return self(img / 255)\n")
    found = locate(golden, unet_trace(tmp_path, scaled))
    assert found.metrics["first_moved"] == ""  # the model itself: its input
    assert "the input of the model (SegModel), before any module ran" in found.summary
    assert found.hint.startswith("Check predict_step first")


def test_a_rename_maps_each_module_to_its_old_name(golden, tmp_path):
    found = locate(golden, unet_trace(tmp_path, RENAME))
    assert found.metrics["first_moved"] is None
    assert found.metrics["renamed_modules"] == [
        ["net.layers.3.upsample", "net.layers.3.up"],
        ["net.layers.4.upsample", "net.layers.4.up"],
    ]
    assert not found.metrics["new_modules"] and not found.metrics["gone_modules"]
    # A bug in a renamed module is named under both names.
    found = locate(golden, unet_trace(tmp_path / "both", RENAME, (STRIDE[0], STRIDE[1])))
    assert "`net.layers.3.up` (ConvTranspose2d, renamed from `net.layers.3.upsample`)" in (
        found.summary
    )


def test_a_harmless_restructuring_moves_nothing(golden, tmp_path):
    found = locate(golden, unet_trace(tmp_path, UNWRAPPED))
    assert found.metrics["first_moved"] is None, found.summary
    assert ["net.layers.1.net.0", "net.layers.1.pool"] in found.metrics["renamed_modules"]
    assert found.metrics["gone_modules"] == ["net.layers.1.net", "net.layers.2.net"]
    assert "the outputs moved through training" in found.summary


def test_a_file_of_another_recording_or_with_a_non_finite_number_is_refused(golden, tmp_path):
    path = tmp_path / "cpu.modules.json"
    path.write_bytes(encode(golden, "sha256:golden"))
    with pytest.raises(FingerprintError, match="another recording"):
        read(path, "sha256:other")
    text = path.read_text()
    first_norm = json.loads(text)["calls"][4]["params"][1]
    path.write_text(text.replace(f"[224,{first_norm}]", "[224,Infinity]", 1))
    with pytest.raises(FingerprintError, match="inf is not a finite number"):
        read(path, "sha256:golden")
    assert read(tmp_path / "none.json", "sha256:golden") is None


def test_the_file_stays_small(tmp_path):
    trace = unet_trace(tmp_path)
    assert len(trace.calls) == 54  # 53 module calls and predict_step's outputs
    assert len(encode(trace, "sha256:x")) < 16_000


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("            nn.Linear(features, hidden),\n            nn.ReLU(),\n",
             "            nn.Linear(features, hidden),\n"),
            "the input of `net.1` (Dropout, renamed from `net.2`), right where `net.1` (ReLU) "
            "ran before, which is gone",
        ),
        (
            ("            nn.Linear(features, hidden),\n",
             "            nn.Linear(features, hidden),\n            nn.Tanh(),\n"),
            "right after `net.1` (Tanh), which did not exist before",
        ),
    ],
    ids=["an activation removed", "an activation added"],
)
def test_a_removed_or_added_module_is_named_where_the_values_moved(tmp_path, edit, expected):
    found = locate(mlp_trace(tmp_path / "golden"), mlp_trace(tmp_path / "now", edit))
    assert expected in found.summary, found.summary


@pytest.mark.gpu
def test_a_trace_on_cuda_matches_the_cpu_golden_and_still_names_the_stride_bug(golden, tmp_path):
    # Against another environment's trace (a CPU golden, read on a GPU runner): float noise
    # between devices is not a moved module, the stride bug still is.
    same = locate(golden, unet_trace(tmp_path, device="cuda"), tolerance=CROSS_ENVIRONMENT)
    assert same.metrics["first_moved"] is None, same.summary
    bug = unet_trace(tmp_path / "bug", STRIDE, device="cuda")
    found = locate(golden, bug, tolerance=CROSS_ENVIRONMENT)
    assert found.metrics["first_moved"] == "net.layers.3.upsample", found.summary


def test_how_a_tensor_moved_reads_in_words():
    was = Stats((8, 4), "float32", mean=0.5, std=0.2, absmax=1.0, proj=0.1)
    assert stats_change((was,), (was,), 1e-3) == ""
    near = Stats((8, 4), "float32", mean=0.5001, std=0.2, absmax=1.0, proj=0.1)
    assert stats_change((was,), (near,), 1e-3) == ""  # 5e-4 of the spread: float noise
    flat = Stats((8, 4), "float32", mean=0.3, std=1e-9, absmax=0.3, proj=0.0)
    assert stats_change((was,), (flat,), 1e-3).startswith("became constant (0.3 everywhere")
    wider = Stats((8, 5), "float32", 0.5, 0.2, 1.0, 0.1)
    assert stats_change((was,), (wider,), 1e-3) == "shape [8, 4] → [8, 5]"
    assert stats_change((was,), (wider,), 1e-3, batch=False) == "shape [8, 4] → [8, 5]"
    other_batch = Stats((6, 4), "float32", 0.5, 0.2, 1.0, 0.1)
    assert stats_change((was,), (other_batch,), 1e-3, batch=False) == ""
    nan = Stats((8, 4), "float32", 0.5, 0.2, 1.0, 0.1, nonfinite=3)
    assert stats_change((was,), (nan,), 1e-3) == "non-finite values 0 → 3"
    assert stats_change((was,), (was, was), 1e-3) == "1 tensor(s) → 2"


def test_a_shifted_label_map_of_string_labels_is_named_after_the_model(tmp_path):
    def names(order):
        return lambda probs: {"name": [order[i] for i in probs.argmax(dim=1)]}

    model = fresh_model("tabular", tmp_path, "TabularMLP")
    rows = torch.randn(16, 8, generator=torch.Generator().manual_seed(1))
    golden = trace_module(model, [rows], postprocess=names(["alpha", "beta", "gamma"]))
    shifted = trace_module(model, [rows], postprocess=names(["beta", "gamma", "alpha"]))
    found = locate(golden, shifted)
    assert found.metrics["first_moved"] == "<predict_step>", found.summary
