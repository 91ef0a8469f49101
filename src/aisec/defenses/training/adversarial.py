"""Adversarial training: PGD-AT (Madry et al. 2018) and TRADES (Zhang et al. 2019)."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from aisec.attacks.base import check_config
from aisec.attacks.integrity.pgd import pgd_perturb
from aisec.core.configurable import check_choice
from aisec.data.dataset import Dataset
from aisec.defenses.base import Defended, Defense, ProgressFn, register_defense
from aisec.errors import InputValidationError

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class AdversarialTrainingConfig:
    """Parameters of :func:`adversarial_training`.

    Attributes
    ----------
    method:
        ``"pgd-at"`` (train on PGD examples only, Madry et al.) or ``"trades"`` (clean
        cross-entropy plus ``beta`` times the KL divergence between clean and adversarial outputs).
    eps:
        L-inf radius of the training perturbations.
    steps:
        PGD steps of the inner maximisation.
    alpha:
        Inner step size; ``None`` takes ``2.5 * eps / steps``.
    beta:
        TRADES trade-off between accuracy and robustness (6.0 in the paper); unused by PGD-AT.
    epochs, lr, batch_size:
        Adam on minibatches of the training split.
    seed:
        Seeds the batch order, the random starts and torch's global generator.
    """

    method: Literal["pgd-at", "trades"] = "pgd-at"
    eps: float = 0.1
    steps: int = 7
    alpha: float | None = None
    beta: float = 6.0
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        ints = ("steps", "epochs", "batch_size")
        check_config(self, "adversarial-training", positive=("eps", "lr", *ints), integer=(*ints, "seed"))
        check_config(self, "adversarial-training", non_negative=("beta",))
        check_choice("adversarial-training.method", self.method, ("pgd-at", "trades"))
        if self.alpha is not None:
            check_config(self, "adversarial-training", positive=("alpha",))

    @property
    def step_size(self) -> float:
        return self.alpha if self.alpha is not None else 2.5 * self.eps / self.steps


def trades_perturb(
    model: nn.Module,
    x: torch.Tensor,
    *,
    eps: float,
    steps: int,
    alpha: float,
    clip: tuple[float, float] | None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """TRADES' inner maximisation: L-inf PGD on ``KL(f(x) || f(x'))`` from a small Gaussian start."""
    with torch.no_grad():
        p_clean = F.softmax(model(x), dim=1)
    noise = torch.randn(x.shape, generator=generator).to(x.device)
    x_adv = x + 0.001 * noise
    if clip is not None:
        x_adv = x_adv.clamp(*clip)
    with torch.enable_grad():
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = F.kl_div(F.log_softmax(model(x_adv), dim=1), p_clean, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x_adv)
            with torch.no_grad():
                x_adv = torch.min(torch.max(x_adv + alpha * grad.sign(), x - eps), x + eps)
                if clip is not None:
                    x_adv = x_adv.clamp(*clip)
    return x_adv.detach()


def adversarial_training(
    model: nn.Module,
    data: Dataset,
    config: AdversarialTrainingConfig | None = None,
    *,
    progress: ProgressFn | None = None,
) -> nn.Module:
    """Adversarially train a copy of ``model`` on ``data.x_train`` and return it in eval mode.

    PGD-AT (Madry et al. 2018, Towards Deep Learning Models Resistant to Adversarial Attacks,
    arXiv:1706.06083) minimises the cross-entropy on L-inf PGD examples made against the current
    weights. TRADES (Zhang et al. 2019, Theoretically Principled Trade-off between Robustness and
    Accuracy, arXiv:1901.08573) minimises ``CE(f(x), y) + beta * KL(f(x) || f(x'))`` with ``x'``
    maximising the KL term. A model given already trained is fine-tuned. Deterministic for a seed
    on the CPU; trains on one thread (tiny models gain nothing from more).

    Parameters
    ----------
    model:
        A classifier mapping inputs to logits; it is copied, never changed.
    data:
        Numeric data; the valid input range is ``data.clip``.
    config:
        See :class:`AdversarialTrainingConfig`; defaults when ``None``.
    progress:
        Called as ``progress(epochs_done, epochs)`` after each epoch.
    """
    cfg = config or AdversarialTrainingConfig()
    if not isinstance(data.x_train, torch.Tensor):
        raise InputValidationError("data", "numeric data (tensors)", f"{data.name} ({data.modality.value})")
    net = copy.deepcopy(model)
    for p in net.parameters():
        p.requires_grad_(True)
    device = next(net.parameters()).device
    x_all, y_all = data.x_train.to(device), data.y_train.to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        for epoch in range(cfg.epochs):
            perm = torch.randperm(len(y_all), generator=gen).to(device)
            total = 0.0
            for lo in range(0, len(y_all), cfg.batch_size):
                idx = perm[lo : lo + cfg.batch_size]
                x, y = x_all[idx], y_all[idx]
                net.eval()  # craft against fixed batch-norm / dropout, as both papers' code does
                if cfg.method == "pgd-at":
                    x_adv = pgd_perturb(
                        net, x, y, eps=cfg.eps, steps=cfg.steps, alpha=cfg.step_size,
                        random_start=True, clip=data.clip, generator=gen,
                    )  # fmt: skip
                else:
                    x_adv = trades_perturb(
                        net, x, eps=cfg.eps, steps=cfg.steps, alpha=cfg.step_size, clip=data.clip, generator=gen
                    )
                net.train()
                opt.zero_grad()
                if cfg.method == "pgd-at":
                    loss = F.cross_entropy(net(x_adv), y)
                else:
                    logits = net(x)
                    kl = F.kl_div(F.log_softmax(net(x_adv), dim=1), F.softmax(logits, dim=1), reduction="batchmean")
                    loss = F.cross_entropy(logits, y) + cfg.beta * kl
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            log.debug("%s epoch %d/%d: loss %.4f", cfg.method, epoch + 1, cfg.epochs, total / len(y_all))
            if progress is not None:
                progress(epoch + 1, cfg.epochs)
    finally:
        torch.set_num_threads(threads)
    log.info("%s: %d epochs in %.1f s", cfg.method, cfg.epochs, time.perf_counter() - start)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


@register_defense
class AdversarialTraining(Defense):
    """Adversarial training, PGD-AT (Madry et al. 2018, arXiv:1706.06083) or TRADES (Zhang et al.
    2019, arXiv:1901.08573): retrains the model on worst-case inputs of the eps-ball."""

    name = "adversarial-training"
    kind = "training"
    paper = (
        "Madry et al. 2018, arXiv:1706.06083 (PGD-AT); "
        "Zhang et al. 2019, Theoretically Principled Trade-off between Robustness and Accuracy, arXiv:1901.08573"
    )
    mitigates = frozenset({"fgsm", "pgd"})
    Config = AdversarialTrainingConfig

    def apply(self, model: nn.Module, data: Dataset, *, seed: int = 0, progress: ProgressFn | None = None) -> Defended:
        net = adversarial_training(model, data, self.config, progress=progress)
        return Defended(model=net, info={"method": self.config.method, "epochs": self.config.epochs})
