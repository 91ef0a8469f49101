"""The parameters of DP-SGD (:func:`aisec.defenses.training.dp.dp_sgd`), checked when the config is made.

The defaults and why they are what they are: :mod:`aisec.defenses.training.dp` and docs/privacy.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aisec.attacks.base import check_config
from aisec.core.configurable import check_choice
from aisec.defenses.training import dp_public
from aisec.errors import ConfigError

LR_FROM_SCRATCH = 0.02
LR_PRETRAINED = 0.005


@dataclass(frozen=True, kw_only=True, slots=True)
class DPSGDConfig:
    """Parameters of :func:`aisec.defenses.training.dp.dp_sgd`.

    Attributes
    ----------
    epsilon, delta:
        The privacy budget to spend; the noise multiplier is chosen by Opacus so that the
        accountant's epsilon after ``epochs`` is at most ``epsilon``.
    accountant:
        ``"prv"`` (privacy random variables, Gopi et al. 2021, arXiv:2106.02848: Opacus reports its
        upper bound; tighter than RDP, so less noise for the same epsilon) or ``"rdp"`` (Renyi DP,
        Mironov 2017, Opacus's default).
    epochs, batch_size:
        Passes over the training split and the *expected* batch size (Poisson sampling with rate
        ``batch_size / n``).
    max_grad_norm:
        Per-example clip norm.
    optimizer, lr, momentum:
        ``"adam"`` (lr) or ``"sgd"`` (lr, momentum) on the noisy gradient. ``lr=None`` takes 0.02 from a random
        start and 0.005 from learned weights (public pretraining or ``reinit=False``), which a large step would undo.
    lr_schedule:
        ``"cosine"`` decays the learning rate to 0 over training; ``"constant"`` keeps it.
    ema:
        Decay of the exponential moving average of the weights that is returned (0 returns the last
        iterate). Post-processing: free in privacy.
    freeze:
        ``"widest-hidden"`` keeps the interior layer with the most weights (not the first nor the last
        layer that has parameters; models with fewer than three such layers freeze nothing) at its
        (re-)initialised weights, a fixed random-feature map, and trains the rest: the noise then falls
        on fewer dimensions. ``"none"`` trains every parameter. The architecture is unchanged.
    activation:
        ``None`` keeps the model; ``"tanh"`` replaces each ``nn.ReLU`` by ``nn.Tanh`` (an
        architecture change).
    reinit:
        Re-initialise every layer (``reset_parameters``) before training, so the guarantee covers
        the whole model. ``False`` fine-tunes the given weights privately: only right when they
        were learned from public data, never from the data being protected.
    public, public_epochs:
        A public set (a name in :data:`aisec.defenses.training.dp_public.PUBLIC_SETS`: ``"font_digits"``, digits
        rendered from bundled fonts) to pretrain the (re-initialised) model on, without DP and for
        ``public_epochs`` epochs, before DP-SGD fine-tunes it on the private data
        (:mod:`aisec.defenses.training.dp_public`). It costs no privacy: the pretrained weights depend on the
        public data and the seed alone. It must have the private data's input shape and classes.
        ``"auto"`` (the default) takes the registered set that serves the domain the data's loader declares
        (``Dataset.meta["domain"]``: scikit-learn's digits get ``"font_digits"``), and none for other data, nor
        with ``reinit=False`` (the given weights are the start); ``None`` always starts from random weights.
        :func:`dp_sgd` also takes a :class:`~aisec.data.Dataset` as ``public``.
    grad_sample_mode:
        (``engine="opacus"``) ``"ghost"`` (ghost clipping, fast) or ``"hooks"`` (per-example gradients, any
        module Opacus supports).
    engine:
        ``"opacus"`` trains through Opacus's ``PrivacyEngine``; ``"aisec"`` computes per-example gradients with
        ``torch.func`` (:mod:`aisec.defenses.training.dp_functional`), Poisson-samples batches, takes its noise
        multiplier from Opacus's ``get_noise_multiplier`` and charges every step to an Opacus accountant: the
        same guarantee, and it allows augmentation multiplicity.
    augment_k, augment_shift, augment_rotate:
        (``engine="aisec"``, image inputs (N, C, H, W)) average each example's gradient over ``augment_k``
        copies, the image and ``augment_k - 1`` random ones (sub-pixel shifts of up to ``augment_shift``
        pixels, rotations of up to ``augment_rotate`` degrees, no flips), before clipping (De et al. 2022,
        Sec. 3.1): one clipped contribution per example, so the privacy cost is unchanged.
    center, center_noise:
        ``"dp-mean"`` trains on the inputs minus a differentially private mean (the rows clipped to the norm the
        data's declared value range allows, Gaussian noise of multiplier ``center_noise`` on their sum; the
        accountant composes it with the DP-SGD steps) and folds the centring into the first layer's bias
        afterwards (:mod:`aisec.defenses.training.dp_center`). It applies when the data declares a value range
        (``Dataset.clip``) and the first layer is an ``nn.Linear`` with a bias; otherwise nothing is centred
        and ``info["center"]`` says why. ``"none"`` never centres. From learned weights (``reinit=False`` or
        ``public``) the mean is first folded out of the first layer's bias (``b + W m``), so training on ``x - m``
        starts from what those weights compute on ``x``.
    seed:
        (:func:`dp_sgd`; :meth:`DPSGD.apply` takes its ``seed`` argument instead) Seeds initial weights of swapped layers, batch sampling and noise (Opacus draws from torch's global generator).
    """

    epsilon: float = 3.0
    delta: float = 1e-5
    accountant: Literal["rdp", "prv"] = "prv"
    epochs: int = 30
    batch_size: int = 128
    max_grad_norm: float = 1.0
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float | None = None
    momentum: float = 0.9
    lr_schedule: Literal["cosine", "constant"] = "constant"
    ema: float = 0.0
    freeze: Literal["none", "widest-hidden"] = "widest-hidden"
    activation: Literal["tanh"] | None = None
    reinit: bool = True
    public: str | None = "auto"
    public_epochs: int = 10
    grad_sample_mode: Literal["ghost", "hooks"] = "ghost"
    engine: Literal["opacus", "aisec"] = "opacus"
    augment_k: int = 1
    augment_shift: float = 0.5
    augment_rotate: float = 5.0
    center: Literal["dp-mean", "none"] = "dp-mean"
    center_noise: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        name = "dp-sgd"
        check_config(self, name, positive=("epsilon", "max_grad_norm"), integer=("epochs", "batch_size", "seed"))
        if self.lr is not None:
            check_config(self, name, positive=("lr",))
        check_config(self, name, integer=("public_epochs",), positive=("public_epochs",))
        if self.public not in (None, "auto", *dp_public.PUBLIC_SETS):
            shown = ", ".join(dp_public.PUBLIC_SETS)
            raise ConfigError(f"{name}.public: {self.public!r} is not a public set; allowed: auto, {shown} or null")
        check_config(self, name, positive=("epochs", "batch_size"), unit=("delta", "momentum"))
        check_config(self, name, non_negative=("ema", "augment_rotate", "augment_shift"), integer=("augment_k",))
        check_config(self, name, positive=("augment_k", "center_noise"))
        if self.augment_k > 1 and self.engine != "aisec":
            raise ConfigError(f"{name}.augment_k: augmentation multiplicity needs engine='aisec'")
        if not 0.0 < self.delta < 1.0:
            raise ConfigError(f"{name}.delta: expected a number in (0, 1), got {self.delta!r}")
        if not self.ema < 1.0:
            raise ConfigError(f"{name}.ema: expected a number in [0, 1), got {self.ema!r}")
        for field, allowed in (
            ("accountant", ("rdp", "prv")),
            ("optimizer", ("adam", "sgd")),
            ("lr_schedule", ("cosine", "constant")),
            ("activation", (None, "tanh")),
            ("freeze", ("none", "widest-hidden")),
            ("grad_sample_mode", ("ghost", "hooks")),
            ("engine", ("opacus", "aisec")),
            ("center", ("dp-mean", "none")),
        ):
            check_choice(f"{name}.{field}", getattr(self, field), allowed)
