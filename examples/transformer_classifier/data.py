"""Generated movie reviews, a word-level tokenizer built offline with `tokenizers`, and
`transformers`' own `DataCollatorWithPadding` (dynamic padding: each batch is padded to its
longest sentence, so batches have different lengths). No downloads, no hub access."""

import functools
import random

import pytorch_lightning as pl
from torch.utils.data import DataLoader

LABELS = ("neg", "pos")
SUBJECTS = ("the movie", "this film", "the plot", "the acting", "the ending", "the cast")
POSITIVE = ("good", "great", "excellent", "wonderful", "enjoyable", "fun")
NEGATIVE = ("bad", "terrible", "awful", "boring", "dull", "weak")
FRAMES = ("{s} was {a}", "i thought {s} was {a}", "honestly {s} was really {a}", "{s} is {a}")
LONG = "everyone agreed that {s} was {a} and the rest was {a} too"  # rare: batches differ in length
SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


def make_corpus(count: int, seed: int = 5) -> list[tuple[str, int]]:
    """`count` (sentence, label) pairs of 3 to 14 words; a private RNG keeps them fixed."""
    rng = random.Random(seed)
    corpus = []
    for _ in range(count):
        label = rng.randrange(2)
        words = POSITIVE if label else NEGATIVE
        frame = LONG if rng.random() < 0.05 else rng.choice(FRAMES)
        text = frame.format(s=rng.choice(SUBJECTS), a=rng.choice(words))
        corpus.append((text, label))
    return corpus


@functools.lru_cache(maxsize=1)
def tokenizer():
    """A BERT-style word-level tokenizer (`[CLS] words [SEP]`), built in code from the corpus."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for text, _ in make_corpus(500) for w in text.lower().split()})
    vocab = {token: i for i, token in enumerate([*SPECIAL, *words])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]),
                                                 ("[SEP]", vocab["[SEP]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", model_max_length=64,
    )


def encode(text: str) -> dict:
    """One example's token ids and attention mask (unpadded: padding happens per batch)."""
    return dict(tokenizer()(str(text).lower()))


def collate(texts: list[str]) -> dict:
    """Raw texts -> a padded prediction batch (what the key examples use)."""
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer(), padding="longest")([encode(t) for t in texts])


class Reviews:
    def __init__(self, pairs):
        self.items = [{**encode(text), "labels": label} for text, label in pairs]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


class ReviewsDataModule(pl.LightningDataModule):
    def __init__(self, batch_size: int = 32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        corpus = make_corpus(480)
        self.train, self.val = Reviews(corpus[:384]), Reviews(corpus[384:])

    def _loader(self, data, shuffle=False):
        from transformers import DataCollatorWithPadding

        pad = DataCollatorWithPadding(tokenizer(), padding="longest")
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, collate_fn=pad)

    def train_dataloader(self):
        return self._loader(self.train, shuffle=True)

    def predict_dataloader(self):
        return self._loader(self.val)
