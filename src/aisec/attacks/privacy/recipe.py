"""The training recipe a grey-box attacker knows, and the ordinary training of one model with it.

Membership attacks such as LiRA (Carlini et al. 2022, arXiv:2112.03570) and the shadow-model attack
(Shokri et al. 2017, arXiv:1610.05820) assume the attacker knows how the target was trained
(:class:`TrainingRecipe`). :func:`train_mlp` trains one MLP of that recipe the ordinary way: how a
target is trained, and the one-after-another baseline of :func:`aisec.attacks.privacy.stacked.train_stacked`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from aisec.attacks.base import check_config
from aisec.core.configurable import check_choice
from aisec.errors import ConfigError


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingRecipe:
    """How the target was trained, as a grey-box attacker knows it.

    Attributes
    ----------
    hidden:
        Widths of the hidden ReLU layers of the MLP (inputs are flattened first).
    epochs:
        Passes over the training set.
    lr:
        Adam's learning rate.
    batch_size:
        Examples per step.
    weight_decay:
        Adam's L2 weight decay.
    architecture:
        Only ``"mlp"`` for now.
    """

    hidden: tuple[int, ...] = (64,)
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    architecture: str = "mlp"

    def __post_init__(self) -> None:
        check_config(self, "recipe", positive=("epochs", "lr", "batch_size"), integer=("epochs", "batch_size"))
        check_config(self, "recipe", non_negative=("weight_decay",))
        check_choice("recipe.architecture", self.architecture, ("mlp",))
        hidden = tuple(self.hidden)
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise ConfigError(f"recipe.hidden: expected positive integers, got {self.hidden!r}")
        object.__setattr__(self, "hidden", hidden)


def flat_rows(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(len(x), -1).float()


def relu_layers(sizes: list[int]) -> list[nn.Module]:
    """``Linear`` layers between consecutive ``sizes``, with a ReLU after every one but the last (fresh weights)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return layers


def train_mlp(
    x: torch.Tensor, y: torch.Tensor, n_classes: int, recipe: TrainingRecipe, seed: int, device: str = "cpu"
) -> nn.Sequential:
    """One MLP of ``recipe`` as a plain ``nn.Sequential`` (flatten first), trained the ordinary way.

    This is how a target is trained, and the one-after-another baseline of :func:`train_stacked`.
    """
    torch.manual_seed(seed)
    xf, y = flat_rows(x).to(device), y.to(device)
    net = nn.Sequential(nn.Flatten(), *relu_layers([xf.shape[1], *recipe.hidden, n_classes])).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    for _ in range(recipe.epochs):
        perm = torch.randperm(len(y), device=device)
        for start in range(0, len(y), recipe.batch_size):
            idx = perm[start : start + recipe.batch_size]
            loss = F.cross_entropy(net(xf[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


_MLP_PARTS = (nn.Linear, nn.ReLU, nn.Flatten, nn.Identity, nn.Dropout)


def mlp_layers(module: Any, in_features: int, n_classes: int) -> list[nn.Linear] | None:
    """The linear layers of an MLP-like torch model (Linear / ReLU / Flatten / Dropout only), else ``None``."""
    if not isinstance(module, nn.Module):
        return None
    leaves = [m for m in module.modules() if not list(m.children())]
    if not leaves or any(not isinstance(m, _MLP_PARTS) for m in leaves):
        return None
    linears = [m for m in leaves if isinstance(m, nn.Linear)]
    relus = sum(isinstance(m, nn.ReLU) for m in leaves)
    if len(linears) < 2 or relus != len(linears) - 1 or linears[0].in_features != in_features:
        return None
    if linears[-1].out_features != n_classes or any(
        a.out_features != b.in_features for a, b in itertools.pairwise(linears)
    ):
        return None
    return linears
