"""HopSkipJump: decision-based black-box evasion from labels only, batched over inputs."""

from __future__ import annotations

import math

import torch

from aisec.attacks.base import Attack, AttackContext, AttackResult
from aisec.attacks.integrity.common import evasion_inputs
from aisec.attacks.integrity.hopskipjump_config import HopSkipJumpConfig
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import BudgetExceededError
from aisec.registry import register_attack
from aisec.targets.base import TargetView

#: Fewest queries per input worth spending: the clean query, the first boundary search and one round.
MIN_QUERIES_PER_INPUT = 200
_RESERVE = 40  # queries per round kept for the step-size and boundary searches
#: Most probe values one gradient query holds (2**26 floats, 256 MiB): larger rounds go in groups of inputs.
PROBE_FLOATS = 1 << 26


def _bc(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-input value shaped to broadcast over inputs like ``like``."""
    return v.view(-1, *([1] * (like.ndim - 1)))


class _Search:
    """One batched search: the inputs, their labels, and the queries each has used."""

    def __init__(self, view: TargetView, x: torch.Tensor, y: torch.Tensor, cfg: HopSkipJumpConfig, cap: float) -> None:
        self.view, self.x, self.y, self.cfg, self.cap = view, x, y, cfg, cap
        self.used = torch.zeros(len(y), dtype=torch.long, device=x.device)
        self.d = x[0].numel()
        self.clip = view.clip
        lo, hi = self.clip if self.clip is not None else (float(x.min()), float(x.max()))
        self.theta = (hi - lo) * (self.d**-1.5 if cfg.norm == "l2" else 1.0 / self.d**2)
        self._probes = torch.empty(0, device=x.device)  # reused by every round's probes: no fresh pages per round

    def clamp(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(*self.clip) if self.clip is not None else x

    def dist(self, a: torch.Tensor, b: torch.Tensor, norm: str | None = None) -> torch.Tensor:
        diff = (a - b).flatten(1)
        return diff.norm(dim=1) if (norm or self.cfg.norm) == "l2" else diff.abs().amax(1)

    def is_adv(self, xs: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
        """Whether each row is misclassified: ONE batched label query, charged to the rows' inputs.

        Rows whose input has spent its share, or a query the budget cannot afford, read as
        not adversarial without being sent, so every adversarial kept was confirmed by the target.
        """
        room = self.used[owners] < self.cap
        n_room = int(room.sum())
        out = torch.zeros(len(owners), dtype=torch.bool, device=xs.device)
        if not n_room or not self.view.budget.can_afford(n_room):
            return out
        if n_room == len(owners):  # every row may go: no copy of the probes
            self.used += torch.bincount(owners, minlength=len(self.used))
            return self.view.predict(xs) != self.y[owners]
        send = room.nonzero().squeeze(1)
        self.used += torch.bincount(owners[send], minlength=len(self.used))
        out[send] = self.view.predict(xs[send]) != self.y[owners[send]]
        return out

    def boundary(self, idx: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
        """Binary search from each adversarial ``adv`` (of inputs ``idx``) towards its input."""
        x = self.x[idx]
        if self.cfg.norm == "l2":
            lo, hi = torch.zeros(len(idx), device=x.device), torch.ones(len(idx), device=x.device)
            tol = self.theta / self.dist(adv, x).clamp_min(1e-12)
        else:
            hi = self.dist(adv, x)
            lo, tol = torch.zeros_like(hi), torch.full_like(hi, self.theta)

        def blend(t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            xr, ar, tt = x[rows], adv[rows], _bc(t, x)
            if self.cfg.norm == "l2":
                return (1 - tt) * xr + tt * ar
            return torch.minimum(torch.maximum(ar, xr - tt), xr + tt)

        every = torch.arange(len(idx), device=x.device)
        for _ in range(60):
            rows = ((hi - lo) > tol).nonzero().squeeze(1)
            if not len(rows):
                break
            mid = (hi[rows] + lo[rows]) / 2
            ok = self.is_adv(blend(mid, rows), idx[rows])
            hi[rows] = torch.where(ok, mid, hi[rows])
            lo[rows] = torch.where(ok, lo[rows], mid)
            stuck = self.used[idx[rows]] >= self.cap
            lo[rows[stuck]] = hi[rows[stuck]]  # out of queries: stop at the last confirmed point
        return blend(hi, every)

    def gradient(self, idx: torch.Tensor, adv: torch.Tensor, dist: torch.Tensor, n_evals: int) -> torch.Tensor:
        """:meth:`_estimate` over groups of inputs whose probes fit in :data:`PROBE_FLOATS` floats.

        On 8x8 digits all inputs are one group (100 x 1,000 x 64 floats); on larger images the
        probes of every input at once would not fit in memory, so the round takes a few queries.
        """
        group = max(1, PROBE_FLOATS // (n_evals * self.d))
        if len(idx) <= group:
            return self._estimate(idx, adv, dist, n_evals)
        parts = [
            self._estimate(idx[s : s + group], adv[s : s + group], dist[s : s + group], n_evals)
            for s in range(0, len(idx), group)
        ]
        return torch.cat(parts)

    def _estimate(self, idx: torch.Tensor, adv: torch.Tensor, dist: torch.Tensor, n_evals: int) -> torch.Tensor:
        """Monte-Carlo estimate of the boundary's normal at each ``adv``: one batched query for all probes.

        The probes are ``adv + delta * u / |u|``, clipped to the valid range. One set of ``n_evals``
        random directions ``u`` serves every input of the round: each input's estimate is drawn as in
        the paper, from 1/k of the random numbers. The estimate is the sum of the probed offsets
        weighted by +-1 (adversarial or not, less their mean); its scale (1 / delta, 1 / n_evals) the
        normalisation (L2) or the sign (L-inf) drops.
        """
        k, shape = len(idx), adv.shape[1:]
        flat = adv.reshape(k, 1, self.d)
        scale = math.sqrt(self.d) if self.cfg.norm == "l2" else float(self.d)
        if self.cfg.norm == "l2":
            u = torch.randn(n_evals, self.d, device=adv.device)
        else:
            u = torch.rand(n_evals, self.d, device=adv.device).mul_(2).sub_(1)
        u /= torch.linalg.vector_norm(u, dim=1, keepdim=True).clamp_min_(1e-12)
        if self._probes.numel() < k * n_evals * self.d:
            most = len(self.y) * min(self.cfg.max_evals, int(self.cfg.init_evals * math.sqrt(self.cfg.iterations)))
            most = min(most * self.d, max(PROBE_FLOATS, n_evals * self.d))  # never more than one group's probes
            self._probes = torch.empty(max(most, k * n_evals * self.d), device=adv.device)
        probes = self._probes[: k * n_evals * self.d].view(k, n_evals, self.d)
        torch.addcmul(flat, (scale * self.theta * dist).view(k, 1, 1), u, out=probes)  # one pass: adv + delta * u
        if self.clip is not None:
            probes.clamp_(*self.clip)
        ok = self.is_adv(probes.view(k * n_evals, *shape), idx.repeat_interleave(n_evals)).view(k, n_evals)
        f = ok.float() * 2 - 1
        mean = f.mean(1, keepdim=True)
        f = torch.where(mean.abs() < 1, f - mean, f)
        offsets = probes.sub_(flat)  # the offsets actually probed, clipping included (the probes are spent)
        grad = torch.bmm(f.unsqueeze(1), offsets).view(k, *shape)
        if self.cfg.norm == "l2":
            return grad / _bc(grad.flatten(1).norm(dim=1).clamp_min(1e-12), grad)
        return grad.sign()


def _starts(search: _Search, pred: torch.Tensor, todo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A first adversarial per input: the nearest other input the target labels differently (no query)."""
    flat = search.x.flatten(1)
    d = torch.cdist(flat, flat)
    d = d.masked_fill(pred[None, :] == search.y[:, None], math.inf)
    best, j = d.min(1)
    found = todo & torch.isfinite(best)
    return search.x[j], found


@register_attack
class HopSkipJump(Attack):
    """HopSkipJump (Chen, Jordan and Wainwright 2020, arXiv:1904.02144): decision-based, labels only.

    From a misclassified starting point (the nearest other input the target labels differently), it
    alternates a binary search to the decision boundary, a Monte-Carlo estimate of the boundary's
    normal from label probes, and a geometric step along it, shrinking the L2 (or L-inf) distance.
    All inputs advance together: each binary-search step, each gradient estimate and each step-size
    trial is ONE batched label query, and each input stays within its share of the query budget. A
    round's gradient estimates share one set of random directions (each input's estimate is drawn as
    in the paper; the inputs' estimates are correlated), which saves drawing one set per input.
    """

    name = "hopskipjump"
    goal = Goal.INTEGRITY
    needs = frozenset({Capability.LABELS})
    modalities = frozenset({Modality.IMAGE, Modality.TABULAR})
    knowledge = Knowledge.BLACK_BOX
    atlas = "AML.T0043.001"
    owasp = "ML01"
    paper = (
        "Chen, Jordan and Wainwright 2020, HopSkipJumpAttack: a query-efficient decision-based attack, arXiv:1904.02144"
    )
    headline = "robust_accuracy"
    worse_when = "lower"
    min_queries = 1000
    Config = HopSkipJumpConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: HopSkipJumpConfig = self.config
        remaining = view.budget.remaining
        if remaining is not None and remaining < self.min_queries:
            raise BudgetExceededError(view.budget.limit or 0, view.budget.used, self.min_queries)
        x, y = evasion_inputs(view, data, cfg.n_samples, ctx.seed)
        n_all = len(y)
        cap: float = cfg.queries_per_input if cfg.queries_per_input is not None else math.inf
        if remaining is not None:
            keep = max(1, remaining // MIN_QUERIES_PER_INPUT)
            x, y = x[:keep], y[:keep]
            cap = min(cap, remaining // len(y))
        n = len(y)
        search = _Search(view, x, y, cfg, cap)
        pred = view.predict(x)
        search.used += 1
        clean_ok = pred == y
        start, found = _starts(search, pred, clean_ok)
        adv = x.clone()
        idx = found.nonzero().squeeze(1)
        if len(idx):
            adv[idx] = search.boundary(idx, start[idx])
        dist = search.dist(adv, x)
        done = 0
        for t in range(1, cfg.iterations + 1):
            n_evals = min(int(cfg.init_evals * math.sqrt(t)), cfg.max_evals)
            room = cap - search.used.float() - _RESERVE
            active = found & (room >= min(10, n_evals))
            if not active.any():
                break
            idx = active.nonzero().squeeze(1)
            n_evals = int(min(n_evals, room[idx].min().item()))
            grad = search.gradient(idx, adv[idx], dist[idx], n_evals)
            xi = dist[idx] / math.sqrt(t)
            moved = adv[idx].clone()
            pending = torch.ones(len(idx), dtype=torch.bool, device=x.device)
            for _ in range(10):  # geometric step-size search, all pending inputs in one query
                rows = pending.nonzero().squeeze(1)
                if not len(rows):
                    break
                cand = search.clamp(adv[idx[rows]] + _bc(xi[rows], grad) * grad[rows])
                ok = search.is_adv(cand, idx[rows])
                moved[rows[ok]] = cand[ok]
                pending[rows[ok]] = False
                xi[rows[~ok]] /= 2
            stepped = (~pending).nonzero().squeeze(1)
            if len(stepped):
                new = search.boundary(idx[stepped], moved[stepped])
                new_dist = search.dist(new, x[idx[stepped]])
                better = new_dist < dist[idx[stepped]]
                rows = idx[stepped[better]]
                adv[rows], dist[rows] = new[better], new_dist[better]
            done = t
            ctx.step(t, cfg.iterations)
        ctx.step(cfg.iterations, cfg.iterations)
        l2 = search.dist(adv, x, "l2")[found]
        linf = search.dist(adv, x, "linf")
        within = found & (linf <= cfg.eps + 1e-6) if cfg.eps is not None else found
        n_ok = max(int(clean_ok.sum().item()), 1)
        clean_acc = clean_ok.float().mean().item() if n else 0.0
        robust_acc = (clean_ok & ~within).float().mean().item() if n else 0.0
        metrics = {
            "norm": cfg.norm,
            "eps": cfg.eps,
            "n": n,
            "n_requested": n_all,
            "iterations": cfg.iterations,
            "iterations_run": done,
            "clean_accuracy": clean_acc,
            "robust_accuracy": robust_acc,
            "success_rate": found.sum().item() / n_ok,
            "success_rate_at_eps": within.sum().item() / n_ok,
            "median_l2": l2.median().item() if len(l2) else 0.0,
            "mean_l2": l2.mean().item() if len(l2) else 0.0,
            "median_linf": linf[found].median().item() if len(l2) else 0.0,
            "mean_queries_per_input": search.used.float().mean().item() if n else 0.0,
        }
        at = f"L-inf {cfg.eps:g}" if cfg.eps is not None else "any distance"
        summary = (
            f"HopSkipJump-{cfg.norm} ({done} of {cfg.iterations} iterations within the budget, labels only): "
            f"an adversarial for "
            f"{metrics['success_rate']:.1%} of correctly classified inputs, median L2 {metrics['median_l2']:.3g}; "
            f"accuracy {clean_acc:.1%} -> {robust_acc:.1%} at {at} (n={n})"
        )
        keep = found.nonzero().squeeze(1)[:64]
        arrays = {"x_adv": adv[keep].cpu().numpy(), "index": keep.cpu().numpy()}
        return AttackResult(metrics=metrics, summary=summary, arrays=arrays)
