"""A tiny BERT sequence classifier from `transformers` (built from a config, no weights
downloaded), trained with AdamW and a linear schedule with warmup, as fine-tuning scripts do."""

import pytorch_lightning as pl
import torch
from data import tokenizer


class BertClassifier(pl.LightningModule):
    def __init__(self, lr: float = 3e-3, warmup_steps: int = 10, hidden: int = 32):
        super().__init__()
        from transformers import BertConfig, BertForSequenceClassification

        self.save_hyperparameters()
        config = BertConfig(
            vocab_size=len(tokenizer()), hidden_size=hidden, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=64,
            num_labels=2, pad_token_id=tokenizer().pad_token_id,
        )
        self.bert = BertForSequenceClassification(config)

    def forward(self, batch):
        return self.bert(input_ids=batch["input_ids"],
                         attention_mask=batch["attention_mask"]).logits

    def training_step(self, batch, batch_idx):
        logits = self(batch)
        loss = torch.nn.functional.cross_entropy(logits, batch["labels"])
        self.log("train_acc", (logits.argmax(dim=1) == batch["labels"]).float().mean())
        return loss

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return self(batch)

    def configure_optimizers(self):
        from transformers import get_linear_schedule_with_warmup

        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        # The first step runs at lr 0: the schedule warms up from 0, as fine-tuning does.
        schedule = get_linear_schedule_with_warmup(
            optimizer, self.hparams.warmup_steps, self.trainer.estimated_stepping_batches
        )
        return [optimizer], [{"scheduler": schedule, "interval": "step"}]


def postprocess(logits: torch.Tensor) -> dict:
    """Logits -> class probabilities (float64, so directional examples see small moves)."""
    return {"scores": torch.softmax(logits.double(), dim=1)}
