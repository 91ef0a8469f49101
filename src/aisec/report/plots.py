"""Plots of a report as inline SVG strings (matplotlib figures without pyplot: no display, no scripts).

Each builder reads the metric conventions the attacks write and returns ``None`` when the run
holds nothing to draw, so a report shows only the plots its findings support:

* evasion: ``eps`` and ``robust_accuracy`` per finding (one point each, a line per attack), and a
  robust evaluation's ``curve_eps`` / ``curve_robust_accuracy``;
* membership inference: ``roc_fpr`` / ``roc_tpr`` on log-log axes with the chance diagonal
  (Carlini et al. 2022, arXiv:2112.03570, argue for the low-FPR regime this shows);
* model extraction: ``curve_queries`` / ``curve_fidelity``;
* model inversion: evidence arrays ``reconstructions`` and ``class_means``, (C, 1, H, W);
* poisoning: ``clean_accuracy`` against ``attack_success_rate`` per ``poison_fraction``.
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure

from aisec.core.findings import Finding

log = logging.getLogger(__name__)

_STYLE = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable, rendered in the page's font
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


@dataclass(frozen=True, slots=True)
class Plot:
    """One figure of a report: an id usable in HTML, a title, the SVG markup and a caption."""

    key: str
    title: str
    svg: str
    caption: str


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _series(finding: Finding, x: str, y: str) -> tuple[np.ndarray, np.ndarray] | None:
    xs, ys = finding.metrics.get(x), finding.metrics.get(y)
    if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys) or not xs:
        return None
    try:
        a, b = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    except (TypeError, ValueError):
        return None
    ok = np.isfinite(a) & np.isfinite(b)
    return (a[ok], b[ok]) if ok.any() else None


def _ok(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.status == "ok"]


def _svg(fig: Figure, key: str) -> str:
    """The figure as an ``<svg>`` element (no XML prolog), with ids unique to ``key``."""
    buf = io.StringIO()
    with rc_context({"svg.hashsalt": key, "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    # matplotlib's clip-path and glyph ids are only salted hashes: prefix them so figures never collide
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", key) + "-"
    text = re.sub(r'id="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", text)
    text = re.sub(r'xlink:href="#([^"]+)"', lambda m: f'xlink:href="#{prefix}{m.group(1)}"', text)
    return text


def _figure(width: float = 5.2, height: float = 3.2) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def robust_accuracy_vs_eps(findings: Sequence[Finding], key: str) -> Plot | None:
    """Robust accuracy against the perturbation budget, one line per attack."""
    points: dict[str, list[tuple[float, float]]] = {}
    curves: list[tuple[str, np.ndarray, np.ndarray]] = []
    for f in _ok(findings):
        eps, acc = _num(f.metrics.get("eps")), _num(f.metrics.get("robust_accuracy"))
        if eps is not None and acc is not None:
            points.setdefault(f.attack, []).append((eps, acc))
        curve = _series(f, "curve_eps", "curve_robust_accuracy")
        if curve is not None:
            curves.append((f"{f.attack} ({f.job_id})", *curve))
    if not points and not curves:
        return None
    with rc_context(_STYLE):
        fig, ax = _figure()
        clean = [_num(f.metrics.get("clean_accuracy")) for f in _ok(findings) if "robust_accuracy" in f.metrics]
        clean = [c for c in clean if c is not None]
        if clean:
            ax.axhline(max(clean), color="0.5", ls=":", lw=1, label="clean accuracy")
        for attack, pts in sorted(points.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=attack)
        for label, xs, ys in curves:
            order = np.argsort(xs)
            ax.plot(xs[order], ys[order], marker=".", ls="--", label=label)
        ax.set_xlabel("perturbation budget eps")
        ax.set_ylabel("robust accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8, frameon=False)
        svg = _svg(fig, key)
    return Plot(
        key, "Robust accuracy vs eps", svg, "Share of test inputs still classified right under attack; lower is worse."
    )


def membership_roc(findings: Sequence[Finding], key: str) -> Plot | None:
    """Membership-inference ROC curves on log-log axes, with the chance diagonal."""
    curves = [(f, c) for f in _ok(findings) for c in (_series(f, "roc_fpr", "roc_tpr"),) if c is not None]
    if not curves:
        return None
    with rc_context(_STYLE):
        fig, ax = _figure(4.6, 3.6)
        lowest = [float(fpr[fpr > 0].min()) for _, (fpr, _) in curves if (fpr > 0).any()]
        lowest += [v for f, _ in curves for v in (_num(f.metrics.get("min_resolvable_fpr")),) if v and v > 0]
        floor = min(lowest, default=1e-3) / 2  # below the lowest FPR the sample resolves
        for f, (fpr, tpr) in curves:
            keep = (fpr > 0) & (tpr > 0)
            if not keep.any():
                continue
            auc = _num(f.metrics.get("auc"))
            label = f"{f.attack}" + (f" (AUC {auc:.3f})" if auc is not None else "")
            ax.plot(fpr[keep], tpr[keep], label=label, drawstyle="steps-post")
        ax.plot([floor, 1], [floor, 1], color="0.5", ls="--", lw=1, label="chance")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(floor, 1)
        ax.set_ylim(floor, 1.05)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.legend(fontsize=8, frameon=False, loc="lower right")
        svg = _svg(fig, key)
    return Plot(
        key,
        "Membership inference ROC (log-log)",
        svg,
        "Members found (TPR) against non-members wrongly flagged (FPR); far above the diagonal at low FPR is a leak.",
    )


def extraction_fidelity(findings: Sequence[Finding], key: str) -> Plot | None:
    """Agreement of an extracted copy with the target against the queries spent."""
    curves = [(f, c) for f in _ok(findings) for c in (_series(f, "curve_queries", "curve_fidelity"),) if c is not None]
    if not curves:
        return None
    with rc_context(_STYLE):
        fig, ax = _figure()
        for f, (q, fid) in curves:
            order = np.argsort(q)
            ax.plot(q[order], fid[order], marker="o", label=f"{f.attack} ({f.job_id})")
        ax.set_xlabel("queries")
        ax.set_ylabel("fidelity (agreement with the target)")
        ax.set_ylim(-0.02, 1.02)
        if all(c[0].min() > 0 for _, c in curves) and max(c[0].max() / max(c[0].min(), 1) for _, c in curves) > 50:
            ax.set_xscale("log")
        ax.legend(fontsize=8, frameon=False)
        svg = _svg(fig, key)
    return Plot(
        key, "Extraction fidelity vs queries", svg, "How closely a stolen copy mimics the model as queries grow."
    )


def poisoning_tradeoff(findings: Sequence[Finding], key: str) -> Plot | None:
    """Clean accuracy against attack success, one point per poison fraction."""
    points: dict[str, list[tuple[float, float, float]]] = {}
    for f in _ok(findings):
        frac = _num(f.metrics.get("poison_fraction"))
        clean = _num(f.metrics.get("clean_accuracy"))
        asr = _num(f.metrics.get("attack_success_rate"))
        if frac is not None and clean is not None and asr is not None:
            points.setdefault(f.attack, []).append((frac, clean, asr))
    if not points:
        return None
    with rc_context(_STYLE):
        fig, ax = _figure()
        for attack, pts in sorted(points.items()):
            pts.sort()
            ax.plot([p[2] for p in pts], [p[1] for p in pts], marker="o", label=attack)
            for frac, clean, asr in pts:
                ax.annotate(f"{frac:g}", (asr, clean), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel("attack success rate")
        ax.set_ylabel("clean accuracy")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8, frameon=False)
        svg = _svg(fig, key)
    return Plot(
        key,
        "Poisoning: clean accuracy vs attack success",
        svg,
        "Each point is one poison fraction (labelled): a poison that keeps clean accuracy high is hard to notice.",
    )


def _load_npz(run_dir: Path, rel: str) -> dict[str, np.ndarray] | None:
    path = (run_dir / rel).resolve()
    if not path.is_relative_to(run_dir.resolve()) or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        log.warning("cannot read evidence %s: %s", path, exc)
        return None


def inversion_grid(findings: Sequence[Finding], key: str, run_dir: Path) -> Plot | None:
    """Reconstructed inputs per class next to the class means (the first inversion finding)."""
    for f in _ok(findings):
        for rel in f.evidence.values():
            arrays = _load_npz(run_dir, rel) if rel.endswith(".npz") else None
            if not arrays or "reconstructions" not in arrays or "class_means" not in arrays:
                continue
            rec, means = arrays["reconstructions"], arrays["class_means"]
            if rec.ndim != 4 or rec.shape[1] not in (1, 3) or means.shape[1:] != rec.shape[1:]:
                continue
            return _grid(rec, means, key, f)
    return None


def _grid(rec: np.ndarray, means: np.ndarray, key: str, f: Finding) -> Plot:
    n = min(len(rec), len(means), 10)
    with rc_context(_STYLE):
        fig = Figure(figsize=(0.75 * n + 0.9, 1.9))
        axes = fig.subplots(2, n, squeeze=False)
        for row, (label, imgs) in enumerate((("class mean", means), ("reconstructed", rec))):
            for c in range(n):
                ax = axes[row][c]
                img = np.moveaxis(imgs[c], 0, -1)
                ax.imshow(img[..., 0] if img.shape[-1] == 1 else np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                if row == 0:
                    ax.set_title(str(c), fontsize=8)
            axes[row][0].set_ylabel(label, fontsize=8)
        svg = _svg(fig, key)
    return Plot(
        key,
        "Model inversion: reconstructions vs class means",
        svg,
        f"Top: the mean training input of each class. Bottom: what {f.attack} recovered from the model alone.",
    )


Builder = Callable[[Sequence[Finding], str], Plot | None]


def goal_plots(goal: str, findings: Sequence[Finding], run_dir: str | Path | None) -> list[Plot]:
    """Every plot the findings of one goal support, in a fixed order (evidence files need ``run_dir``)."""
    builders: list[tuple[str, Builder]] = [
        ("eps", robust_accuracy_vs_eps),
        ("roc", membership_roc),
        ("extraction", extraction_fidelity),
        ("poisoning", poisoning_tradeoff),
    ]
    if run_dir is not None:
        folder = Path(run_dir)
        builders.append(("inversion", lambda fs, k: inversion_grid(fs, k, folder)))
    plots = []
    for name, build in builders:
        try:
            plot = build(findings, f"plot-{goal}-{name}")
        except (ValueError, TypeError, KeyError, IndexError) as exc:  # a malformed metric costs a plot, not the report
            log.warning("plot %s of %s skipped: %s", name, goal, exc)
            plot = None
        if plot is not None:
            plots.append(plot)
    return plots
