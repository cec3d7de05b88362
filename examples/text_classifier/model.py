"""A bag-of-words (and bigrams) sentiment classifier: EmbeddingBag, then a small MLP head."""

import pytorch_lightning as pl
import torch
from data import vocabulary
from torch import nn


class BagOfWordsClassifier(pl.LightningModule):
    def __init__(self, dim: int = 32, classes: int = 2, lr: float = 0.05):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.EmbeddingBag(len(vocabulary()), dim, mode="sum")
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(0.1), nn.Linear(dim, classes))

    def forward(self, ids, offsets):
        return self.head(self.embed(ids, offsets))

    def training_step(self, batch, batch_idx):
        ids, offsets, labels = batch
        logits = self(ids, offsets)
        loss = nn.functional.cross_entropy(logits, labels)
        self.log("train_acc", (logits.argmax(dim=1) == labels).float().mean())
        return loss

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        ids, offsets = batch[0], batch[1]
        return self(ids, offsets)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def postprocess(logits: torch.Tensor) -> dict:
    """Logits -> class probabilities; the label is their argmax (names from `labels`).

    In float64, so that confident predictions do not all round to 1.0 and directional key
    examples can still see a score move.
    """
    return {"scores": torch.softmax(logits.double(), dim=1)}
