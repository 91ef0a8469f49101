"""Sponge inputs: valid inputs that make the target work (and answer) as slowly as possible."""

from __future__ import annotations

import re
import string
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import InputValidationError
from aisec.registry import register_attack
from aisec.targets.base import TargetView

_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern: the vectorizer's unit of work


def token_count(text: str) -> int:
    """Tokens a default scikit-learn vectorizer extracts from ``text`` (a work proxy)."""
    return len(_TOKEN.findall(text))


def text_candidates(benign: list[str], max_chars: int, rng: np.random.Generator, n: int) -> list[str]:
    """Texts of at most ``max_chars`` characters built to maximise a text pipeline's work.

    Families: a benign message repeated to the limit (size only), the most tokens that fit
    (distinct two-letter words), distinct random words of a drawn length (vocabulary misses),
    and mixtures; lengths are drawn so the search also sees which sizes cost most.
    """
    letters = np.array(list(string.ascii_lowercase))
    out: list[str] = []
    for i in range(n):
        family = i % 4
        if family == 0:
            base = benign[int(rng.integers(len(benign)))] or "a"
            text = (base + " ") * (max_chars // (len(base) + 1) + 1)
        elif family == 1:
            pairs = ["".join(p) for p in rng.choice(letters, size=(max_chars // 3 + 1, 2))]
            text = " ".join(pairs)
        elif family == 2:
            k = int(rng.integers(3, 12))
            words = ["".join(w) for w in rng.choice(letters, size=(max_chars // (k + 1) + 1, k))]
            text = " ".join(words)
        else:
            k = int(rng.integers(2, 6))
            words = ["".join(w) for w in rng.choice(letters, size=(max_chars // (k + 1) + 1, k))]
            text = " ".join(words[: len(words) // 2] + [benign[int(rng.integers(len(benign)))]] * 3)
        out.append(text[:max_chars].strip() or "a")
    return out


def activation_density(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Share of the inputs of the model's ReLU modules that are positive, per input (an energy proxy)."""
    acts: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, inp, _o: acts.append(inp[0])) for m in model.modules()
             if isinstance(m, nn.ReLU)]  # fmt: skip
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    if not acts:
        return torch.zeros(len(x))
    return torch.cat([(a > 0).float().flatten(1) for a in acts], 1).mean(1).cpu()


def density_ascent(
    model: nn.Module, x: torch.Tensor, *, clip: tuple[float, float] | None, steps: int, lr: float, temperature: float
) -> torch.Tensor:
    """Gradient ascent on a smooth count of positive ReLU inputs (Shumailov et al.'s white-box sponge)."""
    acts: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, inp, _o: acts.append(inp[0])) for m in model.modules()
             if isinstance(m, nn.ReLU)]  # fmt: skip
    x = x.clone().detach().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    try:
        for _ in range(steps):
            acts.clear()
            model(x)
            if not acts:
                break
            loss = -torch.cat([torch.sigmoid(a / temperature).flatten(1) for a in acts], 1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                if clip is not None:
                    x.clamp_(*clip)
    finally:
        for h in hooks:
            h.remove()
    return x.detach()


def time_queries(view: TargetView, inputs: list, repeats: int) -> np.ndarray:
    """Seconds of ``repeats`` single-input queries cycling through ``inputs`` (each one charged)."""
    out = np.empty(repeats)
    for r in range(repeats):
        item = inputs[r % len(inputs)]
        start = time.perf_counter()
        view.predict(item)
        out[r] = time.perf_counter() - start
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class SpongeConfig:
    """Parameters of :class:`Sponge`.

    Attributes
    ----------
    max_chars:
        Input limit for texts (what the service accepts); crafted texts stay within it.
    n_candidates:
        Candidates per search round; each is timed ``search_repeats`` times.
    rounds:
        Search rounds; later rounds mutate the slowest candidates (black-box genetic search).
    search_repeats:
        Timed queries per candidate during the search (the median ranks it).
    repeats:
        Timed queries for the final benign and crafted latency distributions (p50, p99).
    n_benign:
        Benign test inputs the crafted input is compared with.
    steps, lr:
        Gradient ascent on activation density (white-box torch targets only).
    """

    max_chars: int = 1000
    n_candidates: int = 8
    rounds: int = 2
    search_repeats: int = 3
    repeats: int = 50
    n_benign: int = 20
    steps: int = 100
    lr: float = 0.05

    def __post_init__(self) -> None:
        ints = ("max_chars", "n_candidates", "rounds", "search_repeats", "repeats", "n_benign", "steps")
        check_config(self, "sponge", integer=ints, positive=(*ints, "lr"))


@register_attack
class Sponge(Attack):
    """Sponge examples (Shumailov et al. 2021, "Sponge Examples: Energy-Latency Attacks on Neural
    Networks", arXiv:2006.03463), in spirit.

    Searches valid inputs, within the service's input limits, that make each query cost most. For
    texts: a black-box search over long texts, many distinct short tokens (more vectorizer work per
    character) and vocabulary misses, timed by queries, the slowest mutated each round. For numeric
    inputs: with gradients, ascent on the density of positive ReLU inputs (the paper's energy proxy
    on hardware that skips zeros); without, a random search over dense, extreme but valid inputs
    timed by queries. Every timed query is charged to the budget.

    Headline ``latency_amplification_p99``: p99 latency of the crafted input over p99 of benign
    test inputs (``_p50`` beside it). A text pipeline's cost grows with the text's length, so
    ``size_matched_amplification_p50`` divides by a benign message repeated to the same limit:
    what the search adds beyond sending long inputs. ``work_amplification`` is the work proxy
    (tokens for texts, activation density for torch models) of the crafted over the benign mean.
    """

    name = "sponge"
    goal = Goal.AVAILABILITY
    needs = frozenset({Capability.LABELS})
    knowledge = Knowledge.BLACK_BOX
    atlas = "AML.T0029"
    owasp = "ML10"
    paper = "Shumailov et al. 2021, Sponge Examples: Energy-Latency Attacks on Neural Networks, arXiv:2006.03463"
    headline = "latency_amplification_p99"
    worse_when = "higher"
    Config = SpongeConfig
    nondeterministic_metrics: frozenset[str] = frozenset(
        {"latency_amplification_p99", "latency_amplification_p50", "benign_latency_p50_ms", "benign_latency_p99_ms",
         "crafted_latency_p50_ms", "crafted_latency_p99_ms", "size_matched_amplification_p50", "work_amplification",
         "crafted_work"}
    )  # fmt: skip
    """Wall-clock figures (and what the timed search picked) vary between runs of the same seed."""

    def queries_needed(self, input_shape: tuple[int, ...] | None) -> int:
        """The search's timed candidates, then the benign, size-matched and crafted timings."""
        cfg: SpongeConfig = self.config
        return cfg.n_candidates * cfg.search_repeats * cfg.rounds + 3 * cfg.repeats

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: SpongeConfig = self.config
        rng = np.random.default_rng(ctx.seed)
        x_test, _ = data.test_subset(cfg.n_benign, ctx.seed)
        if len(x_test) == 0:
            raise InputValidationError("data.x_test", "at least one benign test input", 0)
        text = view.modality is Modality.TEXT
        benign = [x_test[i : i + 1] for i in range(len(x_test))]
        if text:
            texts = [str(t)[: cfg.max_chars] for t in x_test]
            best, work, work_benign, flags = self._search_text(view, cfg, texts, rng, ctx)
            benign = [[t] for t in texts]
            matched = text_candidates(texts, cfg.max_chars, rng, 1)  # family 0: benign text at the limit
            size_matched = time_queries(view, [matched], cfg.repeats)
        else:
            best, work, work_benign, flags = self._search_numeric(view, cfg, x_test, rng, ctx)
            size_matched = None
        t_benign = time_queries(view, benign, cfg.repeats)
        t_crafted = time_queries(view, [best], cfg.repeats)
        ctx.step(cfg.rounds + 1, cfg.rounds + 1)
        p50b, p99b = np.percentile(t_benign, [50, 99])
        p50c, p99c = np.percentile(t_crafted, [50, 99])
        metrics: dict[str, float | int | None] = {
            "latency_amplification_p99": float(p99c / p99b),
            "latency_amplification_p50": float(p50c / p50b),
            "benign_latency_p50_ms": float(p50b * 1e3),
            "benign_latency_p99_ms": float(p99b * 1e3),
            "crafted_latency_p50_ms": float(p50c * 1e3),
            "crafted_latency_p99_ms": float(p99c * 1e3),
            "size_matched_amplification_p50": None,
            "work_amplification": float(work / work_benign) if work_benign > 0 else None,
            "crafted_work": float(work),
            "benign_work": float(work_benign),
            "work_proxy": "tokens" if text else "activation density" if work_benign > 0 else "none",
            "repeats": cfg.repeats,
            "max_chars": cfg.max_chars if text else None,
        }
        if size_matched is not None:
            metrics["size_matched_amplification_p50"] = float(p50c / np.percentile(size_matched, 50))
        summary = (
            f"sponge: the crafted input's p50/p99 latency is {metrics['latency_amplification_p50']:.2f}x / "
            f"{metrics['latency_amplification_p99']:.2f}x that of benign inputs "
            f"({p50c * 1e3:.2f} vs {p50b * 1e3:.2f} ms p50)"
            + (f"; {work / work_benign:.2f}x the work proxy ({metrics['work_proxy']})" if work_benign > 0 else "")
        )
        arrays = {"benign_seconds": t_benign, "crafted_seconds": t_crafted}
        if text:
            arrays["crafted_text"] = np.asarray([best[0]], dtype=np.str_)
        else:
            arrays["crafted_input"] = best.detach().cpu().numpy()
        return AttackResult(metrics=metrics, summary=summary, flags=flags, arrays=arrays)

    def _search(self, view: TargetView, cfg: SpongeConfig, pool: list, mutate: Callable[[list], list],
                ctx: AttackContext) -> list:  # fmt: skip
        """Time each candidate, keep the slowest half, mutate it; return candidates slowest first."""
        ranked: list = []
        for r in range(cfg.rounds):
            times = [float(np.median(time_queries(view, [c], cfg.search_repeats))) for c in pool]
            order = np.argsort(times)[::-1]
            ranked = [pool[i] for i in order]
            pool = ranked[: max(1, len(pool) // 2)]
            pool = pool + mutate(pool)[: cfg.n_candidates - len(pool)]
            ctx.step(r + 1, cfg.rounds + 1)
        return ranked

    def _search_text(self, view: TargetView, cfg: SpongeConfig, texts: list[str], rng: np.random.Generator,
                     ctx: AttackContext) -> tuple[list[str], float, float, list[str]]:  # fmt: skip
        pool = [[t] for t in text_candidates(texts, cfg.max_chars, rng, cfg.n_candidates)]

        def mutate(parents: list) -> list:
            kids = []
            for p in parents:
                words = p[0].split()
                cut = int(rng.integers(1, max(2, len(words))))
                other = text_candidates(texts, cfg.max_chars, rng, 4)[int(rng.integers(1, 4))].split()
                kids.append([" ".join(words[:cut] + other[cut:])[: cfg.max_chars].strip() or "a"])
            return kids

        best = self._search(view, cfg, pool, mutate, ctx)[0]
        return best, float(token_count(best[0])), float(np.mean([token_count(t) for t in texts])), []

    def _search_numeric(self, view: TargetView, cfg: SpongeConfig, x: torch.Tensor, rng: np.random.Generator,
                        ctx: AttackContext) -> tuple[torch.Tensor, float, float, list[str]]:  # fmt: skip
        x = x.to(view.device)
        lo, hi = view.clip if view.clip is not None else (float(x.min()), float(x.max()))
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        if Capability.GRADIENTS in view.capabilities:
            model = view.model
            start = x[:1].clone()
            crafted = density_ascent(model, start, clip=(lo, hi), steps=cfg.steps, lr=cfg.lr, temperature=0.1)
            dens_benign = float(activation_density(model, x).mean())
            ctx.step(cfg.rounds, cfg.rounds + 1)
            return crafted, float(activation_density(model, crafted)[0]), dens_benign, []

        def rand(n: int) -> list:
            u = torch.rand((n, *x.shape[1:]), generator=gen)
            corners = torch.where(torch.rand(u.shape, generator=gen) < 0.5, lo, hi)
            mix = torch.where(torch.rand((n,) + (1,) * (x.ndim - 1), generator=gen) < 0.5, corners, lo + (hi - lo) * u)
            return [m.unsqueeze(0).to(view.device, x.dtype) for m in mix]

        best = self._search(view, cfg, rand(cfg.n_candidates), lambda p: rand(len(p)), ctx)[0]
        return best, 0.0, 0.0, ["black-box numeric target: no work proxy, latency only"]


__all__ = [
    "Sponge",
    "SpongeConfig",
    "activation_density",
    "density_ascent",
    "text_candidates",
    "time_queries",
    "token_count",
]
