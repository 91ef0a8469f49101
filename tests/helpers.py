"""Small, seeded models for the tests: each trains in about a second on a CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aisec.core.goals import Modality
from aisec.data import Dataset

#: The SMS Spam Collection, read from the shared folder beside the repository (never copied into it).
SMS_SPAM_PATH = Path(__file__).resolve().parents[2] / "shared" / "data" / "sms_spam" / "SMSSpamCollection"

#: A few dozen short messages for a text target that is always available.
HAM = (
    "are we still meeting for lunch tomorrow",
    "can you pick up milk on the way home",
    "i will call you back after the meeting",
    "happy birthday hope you have a great day",
    "running late be there in ten minutes",
    "did you see the game last night",
    "thanks for dinner it was lovely",
    "see you at the station at six",
    "mum says hi and asks when you visit",
    "the keys are under the mat",
    "let me know when you get home",
    "what time does the film start",
    "ok sounds good see you then",
    "sorry i missed your call whats up",
    "shall we go for a walk this afternoon",
    "i left my umbrella at your place",
    "the meeting moved to thursday morning",
    "good luck with the exam today",
    "can we talk later tonight",
    "dinner is in the oven help yourself",
)
SPAM = (
    "win a free prize now call this number",
    "urgent you have won cash claim your reward today",
    "free entry to win a brand new phone text win",
    "congratulations you won a holiday call now to claim",
    "claim your free gift card click the link now",
    "you have been selected for a cash prize reply yes",
    "free ringtones text stop to opt out",
    "win big money tonight call now free",
    "your account won a bonus claim the prize today",
    "limited offer free mobile upgrade call now",
    "urgent prize waiting claim with code now",
    "cash reward for you text claim to win",
    "free entry weekly draw win cash now",
    "you are a winner call to claim your prize",
    "act now free voucher win a cruise",
    "claim free credit now reply win",
    "txt win to receive your free prize",
    "winner you have a guaranteed cash award call",
    "exclusive offer free tickets call now to win",
    "final notice claim your cash prize today",
)


def seed_everything(seed: int = 0) -> None:
    """Seed torch and NumPy's global generators."""
    torch.manual_seed(seed)
    np.random.seed(seed)


class CancerMLP(nn.Module):
    """30 -> hidden -> 2: a 2-layer MLP for the breast cancer set."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(30, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DigitsCNN(nn.Module):
    """A tiny CNN for 1x8x8 digits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float = 1e-2,
    batch_size: int | None = None,
    seed: int = 0,
) -> nn.Module:
    """Adam on cross-entropy, full batch when ``batch_size`` is None; returns the model in eval mode."""
    seed_everything(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    model.train()
    n = len(y)
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen) if batch_size else torch.arange(n)
        step = batch_size or n
        for start in range(0, n, step):
            idx = order[start : start + step]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (model(x).argmax(1) == y).float().mean().item()


def train_cancer_mlp(data: Dataset, *, hidden: int = 32, epochs: int = 150, seed: int = 0) -> nn.Module:
    """The 2-layer MLP on breast cancer, full batch (well under a second)."""
    seed_everything(seed)
    assert isinstance(data.x_train, torch.Tensor)
    return train_classifier(CancerMLP(hidden), data.x_train, data.y_train, epochs=epochs, seed=seed)


def train_digits_cnn(data: Dataset, *, epochs: int = 5, seed: int = 0) -> nn.Module:
    """The tiny CNN on digits, minibatches of 64 (a couple of seconds)."""
    seed_everything(seed)
    assert isinstance(data.x_train, torch.Tensor)
    return train_classifier(DigitsCNN(), data.x_train, data.y_train, epochs=epochs, batch_size=64, seed=seed)


def tiny_text_dataset() -> Dataset:
    """Inline ham and spam messages; every fourth of each class is held out."""
    texts = list(HAM) + list(SPAM)
    labels = [0] * len(HAM) + [1] * len(SPAM)
    test = [i % 4 == 3 for i in range(len(texts))]
    return Dataset(
        name="tiny_text",
        modality=Modality.TEXT,
        x_train=[t for t, held in zip(texts, test, strict=True) if not held],
        y_train=torch.tensor([y for y, held in zip(labels, test, strict=True) if not held]),
        x_test=[t for t, held in zip(texts, test, strict=True) if held],
        y_test=torch.tensor([y for y, held in zip(labels, test, strict=True) if held]),
        class_names=("ham", "spam"),
    )


def train_text_pipeline(data: Dataset) -> Any:
    """TF-IDF and logistic regression on the training texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000, random_state=0))
    return pipe.fit(list(data.x_train), data.y_train.numpy())


def refuse_empty(item: int) -> int:
    """Raise aisec's validation error for ``0``: an importable task for executor workers."""
    from aisec.errors import InputValidationError

    if item == 0:
        raise InputValidationError("masks", "every model with at least one training point", "an empty mask")
    return item
