"""The bug variants and harmless variants of each family, as a pull request's source edits.

A variant is a list of (old, new) replacements in the family's module (each `old` must occur
in it); `cause` says what the bug is, and `words` are the regular expressions (any of them,
case-insensitive) a finding must contain to name THAT cause; `bench.cause_naming` adds the
location rule. A harmless variant has no words: its report must pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Variant:
    name: str
    cause: str  # the bug in words; "" for a harmless variant
    edits: tuple[tuple[str, str], ...]
    words: tuple[str, ...] = ()  # regexes naming the cause; empty: harmless

    @property
    def harmless(self) -> bool:
        return not self.words


@dataclass(frozen=True)
class Family:
    name: str
    module: str  # file under bench/cause_models/
    model: str  # class in it
    data: str
    config: dict[str, Any]  # mltest.yaml beyond model/data/trainer
    variants: tuple[Variant, ...] = field(default_factory=tuple)


LR_WORDS = (r"learning rate", r"\blr\b")
LOG_LOSS = '        self.log("train_loss", loss, prog_bar=True)\n        return {"loss": loss}'

UNET = Family(
    "unet", "unet.py", "Segmenter", "ShapesData",
    {
        "seeds": [0],
        "model_under_test": {"source": "train", "epochs": 3, "seed": 0},
        "checks": {
            "sanity": {},
            "memorization": {"batches": 1, "max_epochs": 120, "target": {"loss_below": 0.1}},
            "regression": {"inputs": {"examples": 8}},
        },
    },
    (
        Variant("skip-wrong-tensor", "skip concatenation with the wrong tensor",
                (("torch.cat([skip, x], dim=1)", "torch.cat([x, x], dim=1)"),),
                (r"skip connection", r"UpBlock\.forward")),
        Variant("upsample-stride-1", "transposed convolution with stride 1",
                (("kernel_size=2, stride=2)", "kernel_size=2, stride=1)"),),
                (r"stride", r"shape \[.*\] → \[")),
        Variant("lr-x100", "learning rate x100",
                (("lr=1e-2):", "lr=1.0):"),), LR_WORDS),
        Variant("predict-preprocessing", "predict_step skips the training preprocessing",
                (("logits = self(self.preprocess(batch[\"image\"]))\n        return",
                  "logits = self(batch[\"image\"])\n        return"),),
                (r"preprocess", r"input of the model")),
        Variant("frozen-batchnorm", "batch norm frozen (eval mode, no grad) during training",
                (("    def training_step(self, batch, batch_idx):\n        logits",
                  "    def on_train_epoch_start(self):\n"
                  "        for m in self.modules():\n"
                  "            if isinstance(m, nn.BatchNorm2d):\n"
                  "                m.eval()\n"
                  "                m.requires_grad_(False)\n\n"
                  "    def training_step(self, batch, batch_idx):\n        logits"),),
                (r"running stat", r"batch ?norm", r"frozen")),
        Variant("softmax-then-ce", "probabilities fed to cross-entropy (softmax twice)",
                (("F.cross_entropy(logits, batch",
                  "F.cross_entropy(logits.softmax(dim=1), batch"),),
                (r"probabilit", r"softmax")),
        Variant("log-softmax-wrong-axis", "log_softmax over the width axis, not the classes",
                (("F.cross_entropy(logits, batch[\"mask\"])",
                  "F.nll_loss(F.log_softmax(logits, dim=-1), batch[\"mask\"])"),),
                (r"axis", r"\bdim\b")),
        Variant("missing-zero-grad", "gradients never cleared (zero_grad removed)",
                (("optimizer.zero_grad(set_to_none=True)", "pass  # accumulate"),),
                (r"zero_grad", r"accumulat", r"not cleared")),
        Variant("harmless-rename", "", (("self.head", "self.classifier"),)),
        Variant("harmless-reorder", "",
                ((LOG_LOSS, "        # logged per step, shown in the progress bar\n" + LOG_LOSS),
                 ("        return F.relu(self.bn2(self.conv2(x)))",
                  "        x = self.bn2(self.conv2(x))\n        return F.relu(x)"))),
        Variant("harmless-relu-modules", "",
                (("        self.bn2 = nn.BatchNorm2d(out_ch)\n",
                  "        self.bn2 = nn.BatchNorm2d(out_ch)\n        self.act = nn.ReLU()\n"),
                 ("x = F.relu(self.bn1(self.conv1(x)))", "x = self.act(self.bn1(self.conv1(x)))"),
                 ("return F.relu(self.bn2(self.conv2(x)))",
                  "return self.act(self.bn2(self.conv2(x)))"))),
    ),
)  # fmt: skip

GAN = Family(
    "gan", "gan.py", "GAN", "BlobData",
    {
        "seeds": [0],
        "model_under_test": {"source": "train", "epochs": 3, "seed": 0},
        "checks": {
            "sanity": {"init_loss": False},
            "memorization": {"batches": 1, "max_epochs": 300, "hold": 3,
                             "target": {"metric": "gap", "at_most": 0.4},
                             "tolerance": {"relative": 1.0, "epochs": 20}},
            "regression": {},
        },
    },
    (
        Variant("d-labels-swapped", "discriminator's real/fake labels swapped",
                (("self.adversarial_loss(real_logits, torch.ones_like(real_logits))\n"
                  "            + self.adversarial_loss(fake_logits, torch.zeros_like(fake_logits))",
                  "self.adversarial_loss(real_logits, torch.zeros_like(real_logits))\n"
                  "            + self.adversarial_loss(fake_logits, "
                  "torch.ones_like(fake_logits))"),),
                (r"swapped", r"wrong way",
                 r"real.{0,60}(as|called|labell?ed|toward|towards) .?fake")),
        Variant("g-toward-fake", "generator trained toward 'fake'",
                (("g_loss = self.adversarial_loss(g_logits, torch.ones_like(g_logits))",
                  "g_loss = self.adversarial_loss(g_logits, torch.zeros_like(g_logits))"),),
                (r"generator.{0,80}(toward|towards|as|labell?ed) .?fake", r"wrong way")),
        Variant("d-stepped-twice", "discriminator's optimizer stepped twice per step",
                (("        opt_d.step()\n", "        opt_d.step()\n        opt_d.step()\n"),),
                (r"stepp?(ed|s)? (twice|2 times|more)", r"steps? per training_step")),
        Variant("g-opt-over-d-params", "generator's optimizer built over the discriminator",
                (("torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr",
                  "torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr"),),
                (r"generator\.\d.{0,80}(no gradient|did not change|not change|in no param"
                 r"|no optimizer|not in any)",
                 r"more than one optimizer", r"own parameters")),
        Variant("detach-missing", "generated points not detached for the discriminator's loss",
                (("self.discriminator(fake.detach())", "self.discriminator(fake)"),),
                (r"detach", r"stale gradient", r"not cleared", r"accumulat")),
        Variant("lr-x100", "generator learning rate x100",
                (("lr=5e-3, d_lr", "lr=0.5, d_lr"),), LR_WORDS),
        Variant("missing-zero-grad", "discriminator's gradients never cleared",
                (("        opt_d.zero_grad()\n", ""),),
                (r"zero_grad", r"accumulat", r"not cleared")),
        Variant("harmless-rename", "", (("self.discriminator", "self.critic"),)),
        Variant("harmless-reorder", "",
                (("self.log_dict({\"g_loss\": g_loss, \"d_loss\": d_loss}, prog_bar=True)",
                  "# both losses, for the progress bar\n"
                  "        self.log_dict({\"d_loss\": d_loss, \"g_loss\": g_loss}, "
                  "prog_bar=True)"),)),
    ),
)  # fmt: skip

MASK = 'att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))'
CAUSAL = (r"sees? the future", r"later position", r"causal")

LM = Family(
    "lm", "lm.py", "GPT", "CountingData",
    {
        "seeds": [0],
        "model_under_test": {"source": "train", "epochs": 3, "seed": 0},
        "checks": {
            "sanity": {"causal": True},
            "memorization": {"batches": 1, "max_epochs": 150, "target": {"loss_below": 0.3}},
            "regression": {},
        },
    },
    (
        Variant("mask-missing", "causal mask line removed",
                ((f"        {MASK}\n", ""),), CAUSAL),
        Variant("mask-inverted", "causal mask inverted (triu)",
                (("torch.tril(torch.ones(block_size", "torch.triu(torch.ones(block_size"),),
                CAUSAL),
        Variant("mask-off-by-one", "causal mask off by one (diagonal=1)",
                (("torch.ones(block_size, block_size))",
                  "torch.ones(block_size, block_size), diagonal=1)"),),
                CAUSAL),
        Variant("mask-not-applied", "masked_fill's result discarded",
                ((MASK, MASK.replace("att = att.masked_fill", "att.masked_fill")),), CAUSAL),
        Variant("targets-not-shifted", "targets are the inputs (not shifted)",
                (("inputs, targets = tokens[:, :-1], tokens[:, 1:]",
                  "inputs, targets = tokens[:, :-1], tokens[:, :-1]"),),
                (r"not shifted",)),
        Variant("lr-x100", "learning rate x100",
                (("lr=3e-3):", "lr=0.3):"),), LR_WORDS),
        Variant("probs-into-ce", "probabilities fed to cross-entropy",
                (("F.cross_entropy(logits.reshape(-1, logits.size(-1))",
                  "F.cross_entropy(logits.softmax(-1).reshape(-1, logits.size(-1))"),),
                (r"probabilit", r"softmax")),
        Variant("tying-broken", "weight tying broken (head and embedding separate)",
                (("        self.wte.weight = self.lm_head.weight  # weight tying\n", ""),),
                (r"\btie|tying|\btied|shared? (one|the same|a) (tensor|weight|parameter)",)),
        Variant("harmless-rename", "", (("self.ln_f", "self.final_norm"),)),
        Variant("harmless-split-qkv", "",
                (("        self.c_attn = nn.Linear(n_embd, 3 * n_embd)\n",
                  "        self.q = nn.Linear(n_embd, n_embd)\n"
                  "        self.k = nn.Linear(n_embd, n_embd)\n"
                  "        self.v = nn.Linear(n_embd, n_embd)\n"),
                 ("q, k, v = self.c_attn(x).split(C, dim=2)",
                  "q, k, v = self.q(x), self.k(x), self.v(x)"))),
        Variant("harmless-comment", "",
                (("        x = self.wte(idx) + self.wpe(pos)\n",
                  "        # token and position embeddings, summed (as in GPT-2)\n"
                  "        x = self.wte(idx) + self.wpe(pos)\n"),)),
    ),
)  # fmt: skip

FAMILIES = {f.name: f for f in (UNET, GAN, LM)}
