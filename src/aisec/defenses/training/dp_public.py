"""Pretraining on public data before DP-SGD: features learned from data no one needs protecting cost no privacy.

DP-SGD's noise falls on every parameter it moves, and on small private sets most of what it can buy goes into
learning features (docs/privacy.md: the same DP head on features learned without DP reaches 0.96 on digits where
DP-SGD from a random start reaches 0.92). Pretraining on public data, then fine-tuning privately, is how the
strongest DP results are reached (Abadi et al. 2016, arXiv:1607.00133, Sec. 5; Tramer and Boneh 2021,
arXiv:2011.11660; De et al. 2022, arXiv:2204.13650). The pretrained weights are a function of the public data and
the seed alone, so the accountant charges them nothing; DP-SGD then spends the whole budget on the private data.

Which set is used: the one named (``public="font_digits"``), none (``public=None``), or, by default
(``public="auto"``), the registered set whose declared domain is the one the data's loader declares
(``Dataset.meta["domain"]``, e.g. :data:`aisec.data.dataset.DIGITS_8X8` for scikit-learn's digits). A match of
input shape and class names alone is not enough for ``"auto"``: any 10-class 8x8 image set has those, and
nothing tells that digits help with letters or icons; such data get a hint instead (:func:`fitting`).

The pretraining is plain supervised training (:func:`aisec.demo.train_classifier`: Adam, lr 1e-3, batches of 256,
one thread) of the user's architecture on the public set's training split; its weights are cached under ``$AISEC_CACHE/public`` by the SHA-256 of the initial
weights, the architecture, the public data and the recipe, so a second run (another epsilon, another assessment)
reuses them; a cache file that cannot be read, or holds weights of another shape, is logged and pretrained again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from aisec.attacks.privacy.shadows import data_hash
from aisec.core.files import cache_root, load_cached, store_cached
from aisec.data.dataset import DIGITS_8X8, Dataset
from aisec.data.font_digits import load_font_digits
from aisec.errors import InputValidationError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PublicSet:
    """A public pretraining set a config can name, with what it fits, declared so nothing is drawn to check it."""

    load: Callable[[], Dataset]
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    domain: str
    """The ``Dataset.meta["domain"]`` this set stands in for: ``public="auto"`` uses it on such data only."""

    def fits(self, data: Dataset) -> bool:
        """Whether ``data`` has this set's input shape and classes (what :func:`check_fits` requires)."""
        return data.input_shape == self.input_shape and data.class_names == self.class_names

    def serves(self, data: Dataset) -> bool:
        """Whether ``data`` fits and its loader declares this set's domain (what ``public="auto"`` requires)."""
        return self.fits(data) and data.meta.get("domain") == self.domain


PUBLIC_SETS: dict[str, PublicSet] = {
    "font_digits": PublicSet(load_font_digits, (1, 8, 8), tuple(str(c) for c in range(10)), DIGITS_8X8),
}
"""Public pretraining sets a config can name; :func:`aisec.defenses.training.dp.dp_sgd` also takes a Dataset."""
RECIPE = {"version": 1, "optimizer": "adam", "lr": 1e-3, "batch_size": 256}


@lru_cache(maxsize=2)
def load_public(name: str) -> Dataset:
    """The registered public set ``name`` (drawn once per process: every epsilon and seed pretrains on it)."""
    return PUBLIC_SETS[name].load()


def fitting(data: Dataset) -> list[str]:
    """Names of the registered public sets that fit ``data`` (from their declarations: nothing is drawn)."""
    return [name for name, entry in PUBLIC_SETS.items() if entry.fits(data)]


def auto(data: Dataset) -> str | None:
    """The registered public set ``public="auto"`` pretrains on for ``data``: the first that serves its domain."""
    return next((name for name, entry in PUBLIC_SETS.items() if entry.serves(data)), None)


def resolve(setting: str | None, data: Dataset, *, reinit: bool) -> str | None:
    """The registered set a config's ``public`` setting names for ``data``: ``"auto"`` gives :func:`auto`'s pick
    from a re-initialised start and none from given weights (``reinit=False``); a name gives itself; None none."""
    if setting == "auto":
        return auto(data) if reinit else None
    return setting


def check_fits(public: Dataset, data: Dataset) -> None:
    """Raise :class:`InputValidationError` unless ``public`` has ``data``'s input shape and classes."""
    if not isinstance(public.x_train, torch.Tensor):
        raise InputValidationError("public", "numeric data (tensors)", f"{public.name} ({public.modality.value})")
    if public.input_shape != data.input_shape:
        raise InputValidationError("public", f"inputs of shape {data.input_shape} like {data.name}",
                                   f"{public.name} with inputs of shape {public.input_shape}")  # fmt: skip
    if public.class_names != data.class_names:
        raise InputValidationError("public", f"the classes of {data.name} {list(data.class_names)}",
                                   f"{public.name} with {list(public.class_names)}")  # fmt: skip


def _key(net: nn.Module, public: Dataset, epochs: int, seed: int) -> str:
    h = hashlib.sha256()
    h.update(repr(sorted(RECIPE.items())).encode() + f"{epochs}:{seed}".encode())
    h.update(repr(net).encode())
    for name, t in net.state_dict().items():
        h.update(name.encode() + str(tuple(t.shape)).encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    assert isinstance(public.x_train, torch.Tensor)
    h.update(data_hash(public.x_train, public.y_train).encode())
    return h.hexdigest()


def pretrain(net: nn.Module, public: Dataset, *, epochs: int, seed: int) -> tuple[float, bool]:
    """Train ``net`` in place on ``public.x_train`` without DP; return (seconds, whether the cache served it)."""
    assert isinstance(public.x_train, torch.Tensor)
    path = cache_root() / "public" / f"{_key(net, public, epochs, seed)}.pt"
    start = time.perf_counter()
    own = net.state_dict()

    def parse(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # checked before loading: a file that does not fit must leave the initial weights untouched
        if list(state) != list(own) or any(state[n].shape != t.shape for n, t in own.items()):
            raise ValueError(f"weights of another architecture: {list(state)}")
        return state

    cached = load_cached(path, parse, "public pretraining")
    if cached is not None:
        net.load_state_dict(cached)
        return time.perf_counter() - start, True
    from aisec.demo import train_classifier  # lazy: aisec.demo imports the data loaders and spec parsing

    log.info("dp-sgd: pretraining on %s for %d epochs without DP (public data: no privacy cost)", public.name, epochs)
    with torch.random.fork_rng(devices=[]):  # it reseeds torch: the DP steps' noise must not depend on a cache hit
        train_classifier(net, public, epochs=epochs, lr=RECIPE["lr"], batch_size=RECIPE["batch_size"], seed=seed)
    net.train()
    log.info("dp-sgd: pretrained on %s in %.1f s", public.name, time.perf_counter() - start)
    store_cached(path, lambda tmp: torch.save(net.state_dict(), tmp), "public pretraining")
    return time.perf_counter() - start, False
