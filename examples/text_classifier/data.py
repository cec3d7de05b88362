"""Generated movie-review sentences (positive / negative), a vocabulary built from them, and
the collate functions that turn raw text into a bag of word and bigram ids. No downloads."""

import functools
import random
import re

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

LABELS = ("neg", "pos")
SUBJECTS = ("the movie", "this film", "the plot", "the acting", "the soundtrack",
            "the ending", "the story", "the cast")
POSITIVE = ("good", "great", "excellent", "wonderful", "fantastic", "enjoyable", "brilliant",
            "fun")
NEGATIVE = ("bad", "terrible", "awful", "boring", "dull", "poor", "weak", "disappointing")
INTENSIFIERS = ("very", "really", "truly", "so")
NAMES = ("alice", "bob", "carol", "dave", "emma", "frank", "grace", "henry")
FRAMES = ("{s} was {a}", "i thought {s} was {a}", "{n} said {s} was {a}", "{s} is {a}",
          "honestly {s} was {a}")


def clause(rng: random.Random, polarity: int) -> str:
    """One clause whose sentiment is `polarity`; some negate a word of the opposite one."""
    negated = rng.random() < 0.3
    words = (NEGATIVE if polarity else POSITIVE) if negated else (
        POSITIVE if polarity else NEGATIVE)
    adjective = rng.choice(words)
    if negated:
        adjective = f"not {adjective}"
    elif rng.random() < 0.3:  # intensified words keep their polarity: `very good` is positive
        adjective = f"{rng.choice(INTENSIFIERS)} {adjective}"
    frame = rng.choice(FRAMES)
    return frame.format(s=rng.choice(SUBJECTS), a=adjective, n=rng.choice(NAMES))


def make_corpus(count: int, seed: int = 11) -> list[tuple[str, int]]:
    """`count` (sentence, label) pairs; a private RNG keeps the corpus fixed."""
    rng = random.Random(seed)
    corpus = []
    for _ in range(count):
        label = rng.randrange(2)
        text = clause(rng, label)
        if rng.random() < 0.25:
            text = f"{text} and {clause(rng, label)}"
        corpus.append((text, label))
    return corpus


def features(text: str) -> list[str]:
    """Lower-cased words plus adjacent-word bigrams (bigrams carry `not good`)."""
    words = re.findall(r"[a-z]+", text.lower())
    return words + [f"{a}_{b}" for a, b in zip(words, words[1:], strict=False)]


@functools.lru_cache(maxsize=1)
def vocabulary() -> dict[str, int]:
    """Feature -> id, built from the training corpus in a fixed (sorted) order."""
    seen = sorted({f for text, _ in make_corpus(2000) for f in features(text)})
    return {feature: index for index, feature in enumerate(seen)}


def encode(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts -> (flat feature ids, offsets) for nn.EmbeddingBag; unknown features dropped."""
    vocab = vocabulary()
    ids, offsets = [], []
    for text in texts:
        offsets.append(len(ids))
        ids.extend(vocab[f] for f in features(text) if f in vocab)
    return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


def collate(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw texts -> a prediction batch (what the key examples use)."""
    return encode([str(t) for t in texts])


def collate_labeled(pairs: list[tuple[str, int]]):
    """(text, label) pairs -> a training batch (ids, offsets, labels)."""
    ids, offsets = encode([text for text, _ in pairs])
    return ids, offsets, torch.tensor([label for _, label in pairs], dtype=torch.long)


class ReviewsDataModule(pl.LightningDataModule):
    def __init__(self, count: int = 2000, batch_size: int = 64):
        super().__init__()
        self.count = count
        self.batch_size = batch_size

    def setup(self, stage=None):
        corpus = make_corpus(self.count)
        split = int(self.count * 0.8)
        self.train, self.val = corpus[:split], corpus[split:]

    def _loader(self, data, shuffle=False):
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle,
                          collate_fn=collate_labeled)

    def train_dataloader(self):
        return self._loader(self.train, shuffle=True)

    def predict_dataloader(self):
        return self._loader(self.val)
