"""Square attack: score-based black-box evasion by random square updates, L-inf and L2."""

from __future__ import annotations

import math

import torch

from aisec.attacks.base import Attack, AttackContext, AttackResult
from aisec.attacks.integrity.common import evasion_inputs
from aisec.attacks.integrity.square_config import SquareConfig
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import BudgetExceededError
from aisec.registry import register_attack
from aisec.targets.base import TargetView

#: Fewest queries per input that still leave room for a search (one clean query, the start, a few steps).
MIN_QUERIES_PER_INPUT = 10


def margin_loss(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``log p_y - max_{j != y} log p_j``: the logit margin, recovered from probabilities; < 0 means fooled."""
    true = probs.gather(1, y[:, None]).squeeze(1)
    other = probs.scatter(1, y[:, None], -1.0).amax(1)
    return true.clamp_min(1e-30).log() - other.clamp_min(1e-30).log()


def p_schedule(p_init: float, it: int, n_iters: int) -> float:
    """Square fraction at iteration ``it``: the paper's halvings for 10,000 iterations, rescaled to ``n_iters``."""
    i = int(it / max(n_iters, 1) * 10_000)
    halvings = sum(i > m for m in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))
    return p_init / 2**halvings


def _window_shape(p: float, h: int, w: int) -> tuple[int, int]:
    """A square covering about a fraction p of an h x w image; a 1 x k segment of a feature strip."""
    if h == 1:
        return 1, max(1, min(round(p * w), w))
    side = max(1, min(round(math.sqrt(p * h * w)), h, w))
    return side, side


#: Largest (positions x pixels) for which every window of a shape is precomputed as a lookup table.
_TABLE_LIMIT = 1 << 22
_tables: dict[tuple[int, int, int, int, str], torch.Tensor] = {}


def _window_table(shape: tuple[int, int], h: int, w: int, dev: torch.device) -> torch.Tensor | None:
    """Every window of ``shape`` in an h x w image, as booleans (positions, 1, h, w); None when too large."""
    sh, sw = shape
    n_pos = (h - sh + 1) * (w - sw + 1)
    if n_pos * h * w > _TABLE_LIMIT:
        return None
    key = (sh, sw, h, w, str(dev))
    if key not in _tables:
        r = torch.arange(h - sh + 1, device=dev).repeat_interleave(w - sw + 1)
        c = torch.arange(w - sw + 1, device=dev).repeat(h - sh + 1)
        _tables[key] = _masks(r, c, shape, h, w)
    return _tables[key]


def _masks(r: torch.Tensor, c: torch.Tensor, shape: tuple[int, int], h: int, w: int) -> torch.Tensor:
    rows = torch.arange(h, device=r.device)
    cols = torch.arange(w, device=r.device)
    mr = (rows[None] >= r[:, None]) & (rows[None] < (r + shape[0])[:, None])
    mc = (cols[None] >= c[:, None]) & (cols[None] < (c + shape[1])[:, None])
    return (mr[:, :, None] & mc[:, None, :])[:, None]


def _windows(n: int, shape: tuple[int, int], h: int, w: int, gen: torch.Generator, dev: torch.device) -> torch.Tensor:
    """One uniformly random window of the given shape per input, as a boolean (n, 1, h, w) mask."""
    sh, sw = shape
    table = _window_table(shape, h, w, dev)
    if table is not None:  # one draw and one gather per step
        return table[torch.randint(0, len(table), (n,), generator=gen).to(dev)]
    r = torch.randint(0, h - sh + 1, (n,), generator=gen).to(dev)
    c = torch.randint(0, w - sw + 1, (n,), generator=gen).to(dev)
    return _masks(r, c, shape, h, w)


def _bump(shape: tuple[int, int], device: torch.device) -> torch.Tensor:
    """The paper's meta-pseudo-Gaussian: concentric rings weighted 1/(k+1)^2, halves of opposite sign, norm 1."""
    sh, sw = shape
    ri = (torch.arange(sh, device=device, dtype=torch.float32) - (sh - 1) / 2).abs()
    ci = (torch.arange(sw, device=device, dtype=torch.float32) - (sw - 1) / 2).abs()
    m = 1.0 / (torch.maximum(ri[:, None], ci[None, :]).floor() + 1) ** 2
    if sw > 1:
        m[:, sw // 2 :] *= -1
    return m / m.norm()


def _as_image(x: torch.Tensor) -> torch.Tensor:
    """Inputs as (N, C, H, W); 1-D features become a 1 x D strip."""
    if x.ndim == 4:
        return x
    if x.ndim == 3:
        return x[:, None]
    return x.reshape(len(x), 1, 1, -1)


def _bc4(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def _project_l2(delta: torch.Tensor, eps: float) -> torch.Tensor:
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return delta * (eps / norms).clamp(max=1.0)


class _Square:
    """One batched Square search over images shaped (N, C, H, W)."""

    def __init__(self, cfg: SquareConfig, clip: tuple[float, float] | None, gen: torch.Generator) -> None:
        self.cfg, self.clip, self.gen = cfg, clip, gen

    def _clip(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(*self.clip) if self.clip is not None else x

    def _rand_sign(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        return (torch.randint(0, 2, shape, generator=self.gen) * 2 - 1).to(device, torch.float32)

    def start(self, x: torch.Tensor) -> torch.Tensor:
        """Vertical stripes of +-eps (L-inf), or +-1 stripes scaled to norm eps (L2)."""
        n, c, _, w = x.shape
        stripes = self._rand_sign((n, c, 1, w), x.device).expand_as(x)
        if self.cfg.norm == "linf":
            return self._clip(x + self.cfg.eps * stripes)
        return self._clip(x + _project_l2(stripes * 1e6, self.cfg.eps))

    def propose(self, x: torch.Tensor, x_best: torch.Tensor, p: float) -> torch.Tensor:
        """One random square change per input."""
        n, c, h, w = x.shape
        shape = _window_shape(p, h, w)
        mask = _windows(n, shape, h, w, self.gen, x.device)
        delta = x_best - x
        if self.cfg.norm == "linf":
            vals = self.cfg.eps * self._rand_sign((n, c, 1, 1), x.device)
            cand = self._clip(x + torch.where(mask, vals, delta))
            for _ in range(4):  # a change that changes nothing wastes a query: draw the signs again
                same = (cand == x_best).flatten(1).all(1)
                if not same.any():
                    break
                vals = torch.where(_bc4(same), -vals, vals)
                cand = torch.where(_bc4(same), self._clip(x + torch.where(mask, vals, delta)), cand)
                if c > 1:
                    vals = torch.where(_bc4(same), self.cfg.eps * self._rand_sign((n, c, 1, 1), x.device), vals)
            return cand
        mask2 = _windows(n, shape, h, w, self.gen, x.device)
        both = mask | mask2
        kept = torch.where(both, 0.0, delta)
        unused_sq = (self.cfg.eps**2 - kept.flatten(1).pow(2).sum(1)).clamp_min(0.0)
        per_channel = (unused_sq / c).sqrt().view(n, 1, 1, 1)
        bump = torch.zeros_like(x)
        b = _bump(shape, x.device)
        bump[mask.expand_as(x)] = b.repeat(n * c, 1, 1).flatten()
        bump = bump * self._rand_sign((n, c, 1, 1), x.device) * per_channel
        return self._clip(x + _project_l2(kept + bump, self.cfg.eps))


@register_attack
class Square(Attack):
    """Square attack (Andriushchenko, Croce, Flammarion and Hein 2020, arXiv:1912.00049).

    A score-based black-box attack: starting from vertical stripes at the edge of the eps-ball,
    it repeatedly changes one random square of the perturbation (L-inf: to +-eps per channel; L2:
    moves mass between two squares with a pseudo-Gaussian bump) and keeps the change when the
    margin between the true class and the best other class shrinks. The square shrinks on a fixed
    schedule. Only the probabilities the API returns are used; every input still unbroken is
    queried in one batch per step, each input within its share of the query budget.
    """

    name = "square"
    goal = Goal.INTEGRITY
    needs = frozenset({Capability.PROBABILITIES})
    modalities = frozenset({Modality.IMAGE, Modality.TABULAR})
    knowledge = Knowledge.BLACK_BOX
    atlas = "AML.T0043.001"
    owasp = "ML01"
    paper = (
        "Andriushchenko et al. 2020, Square Attack: a query-efficient black-box adversarial attack via "
        "random search, arXiv:1912.00049"
    )
    headline = "robust_accuracy"
    worse_when = "lower"
    min_queries = 100
    Config = SquareConfig

    def _search(
        self, view: TargetView, search: _Square, x: torch.Tensor, x_best: torch.Tensor, y: torch.Tensor,
        loss: torch.Tensor, fooled: torch.Tensor, used: torch.Tensor, clean_ok: torch.Tensor, per_input: int,
        feat_shape: tuple[int, ...], ctx: AttackContext,
    ) -> None:  # fmt: skip
        """The random search after the start, updating ``x_best``, ``loss``, ``fooled`` and ``used`` in place.

        Every input still unbroken has made the same number of queries, so the unbroken ones are
        kept in compact tensors that shrink only when an input breaks: no gather or scatter over
        the whole batch per step.
        """
        cfg: SquareConfig = self.config
        act = (clean_ok & ~fooled).nonzero().squeeze(1)
        xa, xb, ya, la = x[act], x_best[act], y[act], loss[act]
        for it in range(1, per_input - 1):
            if not len(act):
                break
            cand = search.propose(xa, xb, p_schedule(cfg.p_init, it, per_input - 2))
            p_cand = view.predict_proba(cand.reshape(len(act), *feat_shape))
            new = margin_loss(p_cand, ya)
            better = new < la
            la = torch.where(better, new, la)
            xb = torch.where(_bc4(better), cand, xb)
            broke = better & (p_cand.argmax(1) != ya)
            if broke.any():  # write the broken inputs back and drop them from the search
                rows = act[broke]
                x_best[rows], loss[rows], fooled[rows] = xb[broke], la[broke], True
                used[rows] += it
                keep = ~broke
                act, xa, xb, ya, la = act[keep], xa[keep], xb[keep], ya[keep], la[keep]
            ctx.step(it, per_input - 2)
        if len(act):
            x_best[act], loss[act] = xb, la
            used[act] += max(per_input - 2, 0)

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: SquareConfig = self.config
        remaining = view.budget.remaining
        if remaining is not None and remaining < self.min_queries:
            raise BudgetExceededError(view.budget.limit or 0, view.budget.used, self.min_queries)
        x_all, y_all = evasion_inputs(view, data, cfg.n_samples, ctx.seed)
        n_all = len(y_all)
        per_input = cfg.queries_per_input
        if remaining is not None:  # fewer inputs rather than a useless number of queries each
            n_fit = max(1, remaining // MIN_QUERIES_PER_INPUT)
            x_all, y_all = x_all[:n_fit], y_all[:n_fit]
            per_input = min(per_input, remaining // len(y_all))
        n = len(y_all)
        gen = torch.Generator(device="cpu").manual_seed(ctx.seed)
        x = _as_image(x_all)
        search = _Square(cfg, view.clip, gen)
        used = torch.ones(n, dtype=torch.long, device=view.device)
        probs = view.predict_proba(x_all)
        clean_ok = probs.argmax(1) == y_all
        fooled = ~clean_ok
        x_best = x.clone()
        loss = margin_loss(probs, y_all)
        if cfg.eps > 0 and per_input >= 2 and clean_ok.any():
            idx = clean_ok.nonzero().squeeze(1)
            cand = search.start(x[idx])
            p_cand = view.predict_proba(cand.reshape(-1, *x_all.shape[1:]))
            loss[idx] = margin_loss(p_cand, y_all[idx])
            fooled[idx] = p_cand.argmax(1) != y_all[idx]
            x_best[idx] = cand
            used[idx] += 1
            self._search(
                view, search, x, x_best, y_all, loss, fooled, used, clean_ok, per_input, tuple(x_all.shape[1:]), ctx
            )
        ctx.step(1, 1)
        broken = clean_ok & fooled
        delta = (x_best - x).flatten(1)
        size = delta.abs().amax(1) if cfg.norm == "linf" else delta.norm(dim=1)
        clean_acc = clean_ok.float().mean().item() if n else 0.0
        robust_acc = (clean_ok & ~broken).float().mean().item() if n else 0.0
        success = broken.sum().item() / max(int(clean_ok.sum().item()), 1)
        q_broken = used[broken].float()
        metrics = {
            "eps": cfg.eps,
            "norm": cfg.norm,
            "n": n,
            "n_requested": n_all,
            "queries_per_input": per_input,
            "clean_accuracy": clean_acc,
            "robust_accuracy": robust_acc,
            "attack_success_rate": success,
            "mean_queries_per_input": used.float().mean().item() if n else 0.0,
            "median_queries_to_success": q_broken.median().item() if len(q_broken) else 0.0,
            "max_perturbation": float(size.max().item()) if n else 0.0,
        }
        summary = (
            f"Square-{cfg.norm} at eps={cfg.eps:g} with {per_input} queries per input: accuracy "
            f"{clean_acc:.1%} -> {robust_acc:.1%} ({success:.1%} of correctly classified inputs broken, n={n})"
        )
        keep = broken.nonzero().squeeze(1)[:64]
        # ``broken`` covers every requested input (False for those a limited budget left unattacked), in the
        # order of the data: robust-eval takes the exact per-input union of its suite from it
        broken_all = torch.zeros(n_all, dtype=torch.bool)
        broken_all[:n] = broken.cpu()
        arrays = {
            "x_adv": x_best[keep].reshape(-1, *x_all.shape[1:]).cpu().numpy(),
            "index": keep.cpu().numpy(),
            "broken": broken_all.numpy(),
        }
        return AttackResult(metrics=metrics, summary=summary, arrays=arrays)
