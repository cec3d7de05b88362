"""Generated house prices: 6 numeric features and a district, made by code (no downloads).

The price is a smooth function of the features and the district; district C is noisier than
A and B, so the evaluation gate has a real gap between slices to watch. The model sees the
district one-hot after the numeric features. Examples are dicts, so the gate can slice the
data module's own loaders by the `district` column.
"""

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

FEATURES = 6
DISTRICTS = ("A", "B", "C")
NOISE = {"A": 0.05, "B": 0.1, "C": 0.25}
# Feature scaling constants, as a real project would compute once and commit.
MEAN = 0.0
STD = 1.0


def make_houses(rows: int, seed: int = 7) -> list[dict]:
    """Houses with features `x`, a `district` and a `price`; a private generator fixes them."""
    gen = torch.Generator().manual_seed(seed)
    weights = torch.tensor([0.8, -0.5, 0.3, 0.0, 0.6, -0.2])
    x = torch.randn(rows, FEATURES, generator=gen)
    district = torch.randint(0, len(DISTRICTS), (rows,), generator=gen)
    noise = torch.randn(rows, generator=gen)
    houses = []
    for i in range(rows):
        name = DISTRICTS[int(district[i])]
        price = x[i] @ weights + 0.5 * torch.sin(2 * x[i, 0]) + 0.3 * int(district[i])
        houses.append({"x": x[i], "district": name,
                       "price": (price + NOISE[name] * noise[i]).reshape(1)})
    return houses


class Houses(Dataset):
    def __init__(self, houses: list[dict]):
        self.houses = houses

    def __len__(self):
        return len(self.houses)

    def __getitem__(self, index):
        house = self.houses[index]
        onehot = torch.zeros(len(DISTRICTS))
        onehot[DISTRICTS.index(house["district"])] = 1.0
        x = torch.cat([(house["x"] - MEAN) / STD, onehot])
        return {"x": x, "district": house["district"], "y": house["price"]}


class HouseDataModule(pl.LightningDataModule):
    def __init__(self, rows: int = 1200, batch_size: int = 64):
        super().__init__()
        self.rows = rows
        self.batch_size = batch_size

    def setup(self, stage=None):
        houses = make_houses(self.rows)
        split = int(self.rows * 0.75)
        self.train = Houses(houses[:split])
        self.val = Houses(houses[split:])

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=self.batch_size)

    def predict_dataloader(self):
        return DataLoader(self.val, batch_size=self.batch_size)
