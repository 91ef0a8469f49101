"""The catalog: MITRE ATLAS techniques, OWASP ML Top 10 risks, NIST AI RMF subcategories,
mitigations with their costs, and the AI security checklist.

Mitigations are keyed by ATLAS technique and OWASP id, not by attack name, so an attack added
later (or a plugin) is covered as soon as its class metadata names its technique. Attack names
are listed as well (:data:`ATTACK_TECHNIQUES`) for findings whose ids are empty.

Sources: MITRE ATLAS (https://atlas.mitre.org), OWASP Machine Learning Security Top 10 (2023),
NIST AI 100-1 "AI Risk Management Framework 1.0" (2023).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from aisec.core.goals import Goal

OWASP_ML_TOP10: dict[str, str] = {
    "ML01": "Input manipulation",
    "ML02": "Data poisoning",
    "ML03": "Model inversion",
    "ML04": "Membership inference",
    "ML05": "Model theft",
    "ML06": "AI supply chain attacks",
    "ML07": "Transfer learning attack",
    "ML08": "Model skewing",
    "ML09": "Output integrity attack",
    "ML10": "Model poisoning",
}


@dataclass(frozen=True, slots=True)
class Technique:
    """A MITRE ATLAS technique with the OWASP risk and the NIST AI RMF subcategories it maps to."""

    atlas: str
    name: str
    goal: Goal
    owasp: str
    nist: tuple[str, ...]


TECHNIQUES: dict[str, Technique] = {
    t.atlas: t
    for t in (
        Technique("AML.T0043", "Craft adversarial data", Goal.INTEGRITY, "ML01", ("MEASURE 2.7",)),
        Technique("AML.T0043.000", "Craft adversarial data: white-box optimization", Goal.INTEGRITY, "ML01",
                  ("MEASURE 2.7", "MEASURE 2.5")),
        Technique("AML.T0043.001", "Craft adversarial data: black-box optimization", Goal.INTEGRITY, "ML01",
                  ("MEASURE 2.7",)),
        Technique("AML.T0043.002", "Craft adversarial data: black-box transfer", Goal.INTEGRITY, "ML01",
                  ("MEASURE 2.7",)),
        Technique("AML.T0043.003", "Craft adversarial data: manual modification", Goal.INTEGRITY, "ML01",
                  ("MEASURE 2.7",)),
        Technique("AML.T0043.004", "Craft adversarial data: insert backdoor trigger", Goal.INTEGRITY, "ML10",
                  ("MEASURE 2.7",)),
        Technique("AML.T0015", "Evade AI model", Goal.INTEGRITY, "ML01", ("MEASURE 2.7",)),
        Technique("AML.T0020", "Poison training data", Goal.INTEGRITY, "ML02", ("MEASURE 2.7", "MAP 4.1")),
        Technique("AML.T0018", "Manipulate AI model (backdoor)", Goal.INTEGRITY, "ML10", ("MEASURE 2.7",)),
        Technique("AML.T0018.000", "Manipulate AI model: poison AI model", Goal.INTEGRITY, "ML10",
                  ("MEASURE 2.7",)),
        Technique("AML.T0010", "AI supply chain compromise", Goal.INTEGRITY, "ML06", ("GOVERN 6.1", "MANAGE 3.1")),
        Technique("AML.T0010.003", "AI supply chain compromise: model", Goal.INTEGRITY, "ML06",
                  ("GOVERN 6.1", "MANAGE 3.1")),
        Technique("AML.T0011.000", "User execution: unsafe AI artifacts", Goal.INTEGRITY, "ML06",
                  ("GOVERN 6.1", "MANAGE 3.1")),
        Technique("AML.T0024", "Exfiltration via AI inference API", Goal.PRIVACY, "ML04", ("MEASURE 2.10",)),
        Technique("AML.T0024.000", "Infer training data membership", Goal.PRIVACY, "ML04", ("MEASURE 2.10",)),
        Technique("AML.T0024.001", "Invert AI model", Goal.PRIVACY, "ML03", ("MEASURE 2.10",)),
        Technique("AML.T0024.002", "Extract AI model", Goal.CONFIDENTIALITY, "ML05", ("MEASURE 2.7",)),
        Technique("AML.T0029", "Denial of AI service", Goal.AVAILABILITY, "ML01", ("MEASURE 2.7", "MANAGE 2.4")),
        Technique("AML.T0034", "Cost harvesting", Goal.AVAILABILITY, "ML01", ("MEASURE 2.7",)),
        Technique("AML.T0046", "Spamming AI system with chaff data", Goal.AVAILABILITY, "ML02",
                  ("MEASURE 2.7",)),
    )
}  # fmt: skip

#: Known attack names (built in or planned) and their (ATLAS technique, OWASP id).
ATTACK_TECHNIQUES: dict[str, tuple[str, str]] = {
    **{
        n: ("AML.T0043.000", "ML01")
        for n in ("fgsm", "pgd", "apgd", "cw", "deepfool", "robust-eval", "patch", "ensemble")
    },
    **{n: ("AML.T0043.001", "ML01") for n in ("square", "hopskipjump", "good-word", "word-edit")},
    "transfer": ("AML.T0043.002", "ML01"),
    "label-flip": ("AML.T0020", "ML02"),
    "clean-label-backdoor": ("AML.T0020", "ML02"),
    "feature-collision": ("AML.T0020", "ML02"),
    "focused": ("AML.T0020", "ML02"),
    "backdoor": ("AML.T0018.000", "ML10"),
    "dictionary": ("AML.T0020", "ML02"),
    "sponge": ("AML.T0029", "ML01"),
    **{n: ("AML.T0024.000", "ML04") for n in ("loss-threshold", "lira", "shokri", "rmia", "label-only", "dp-audit")},
    **{n: ("AML.T0024.001", "ML03") for n in ("inversion", "attribute-inference", "property-inference")},
    **{n: ("AML.T0024.002", "ML05") for n in ("knockoff", "jbda", "thief", "equation-solving", "text-words")},
    "model-scan": ("AML.T0010.003", "ML06"),
}

Cost = str


@dataclass(frozen=True, slots=True)
class Mitigation:
    """A countermeasure, what it addresses and what it costs."""

    id: str
    name: str
    cost: Cost
    """What the mitigation costs: accuracy, compute, latency, usability, people."""
    atlas: tuple[str, ...]
    """ATLAS techniques (a parent id covers its sub-techniques)."""
    owasp: tuple[str, ...]
    goals: tuple[Goal, ...]
    in_aisec: str = ""
    """Where aisec provides or checks it (empty: outside aisec)."""


_I, _A, _C, _P = Goal.INTEGRITY, Goal.AVAILABILITY, Goal.CONFIDENTIALITY, Goal.PRIVACY

#: Mitigations, most broadly useful first within each concern.
MITIGATIONS: tuple[Mitigation, ...] = (
    Mitigation("adversarial-training", "Adversarial training (PGD / TRADES)",
               "training 3-10x slower; clean accuracy usually drops a few points",
               ("AML.T0043", "AML.T0015"), ("ML01",), (_I,), "defense adversarial-training"),
    Mitigation("randomized-smoothing", "Randomized smoothing with a certified radius",
               "many noisy forward passes per prediction; lower clean accuracy; L2 certificates only",
               ("AML.T0043", "AML.T0015"), ("ML01",), (_I,), "defense randomized-smoothing"),
    Mitigation("input-transformation", "Input squeezing / smoothing and adversarial-input detection",
               "cheap, but adaptive attacks often bypass it; false positives reject real inputs",
               ("AML.T0043", "AML.T0015"), ("ML01",), (_I,), "defenses input/"),
    Mitigation("output-hardening", "Return labels or top-k only, round or noise scores",
               "clients lose calibrated confidences; does not stop label-only attacks",
               ("AML.T0043.001", "AML.T0024"), ("ML01", "ML03", "ML04", "ML05"), (_I, _P, _C),
               "threat_model.output; gateway output policy"),
    Mitigation("rate-limits", "API authentication, per-client rate limits and query budgets",
               "heavy legitimate clients are throttled; needs identity management",
               ("AML.T0043.001", "AML.T0024", "AML.T0029", "AML.T0034", "AML.T0046"),
               ("ML01", "ML03", "ML04", "ML05"), (_I, _P, _C, _A), "aisec serve (gateway)"),
    Mitigation("query-monitoring", "Extraction and probing monitors on the query stream",
               "storage of query history; false alarms need triage",
               ("AML.T0024.002", "AML.T0043.001", "AML.T0029"), ("ML01", "ML05"), (_C, _I, _A),
               "aisec serve monitors"),
    Mitigation("watermarking", "Model watermarking / fingerprinting",
               "proves theft after the fact only; slight accuracy cost; a thief may remove it",
               ("AML.T0024.002",), ("ML05",), (_C,), "defense watermark"),
    Mitigation("dp-training", "Differentially private training (DP-SGD)",
               "accuracy drops (often several points at useful epsilon); 2-10x training time",
               ("AML.T0024.000", "AML.T0024.001"), ("ML03", "ML04"), (_P,), "defense dp (opacus)"),
    Mitigation("regularization", "Less overfitting: regularization, early stopping, more data",
               "cheap; reduces but does not bound membership leakage",
               ("AML.T0024.000", "AML.T0024.001"), ("ML03", "ML04"), (_P,)),
    Mitigation("data-minimization", "Remove or pseudonymize personal and secret data before training",
               "features lost to the model; PII detection misses some records",
               ("AML.T0024.000", "AML.T0024.001"), ("ML03", "ML04"), (_P,), "data/pii checks"),
    Mitigation("data-sanitization", "Poisoning detection: outlier and label-noise filtering before training",
               "some clean data discarded; clean-label poisons are hard to spot",
               ("AML.T0020", "AML.T0018", "AML.T0043.004", "AML.T0046"), ("ML02", "ML10", "ML08"), (_I, _A),
               "defenses data/"),
    Mitigation("data-provenance", "Training-data provenance and write access control",
               "process and tooling effort; slows data intake",
               ("AML.T0020", "AML.T0018", "AML.T0046"), ("ML02", "ML10", "ML08"), (_I, _A)),
    Mitigation("backdoor-removal", "Fine-pruning / retraining on trusted data to remove backdoors",
               "retraining compute; some clean accuracy lost",
               ("AML.T0018", "AML.T0043.004"), ("ML10", "ML02"), (_I,)),
    Mitigation("safe-serialization", "Vetted dependencies and safe model formats (safetensors, ONNX), scanned files",
               "conversion effort; pinned versions need upkeep",
               ("AML.T0010", "AML.T0011.000"), ("ML06", "ML07"), (_I, _C), "aisec scan"),
    Mitigation("vetted-pretrained", "Use pre-trained models from vetted sources; re-train the head on own data",
               "fewer ready-made models; extra fine-tuning",
               ("AML.T0010", "AML.T0018"), ("ML07", "ML06"), (_I,)),
    Mitigation("input-limits", "Input limits: size, length, timeouts, per-request compute caps",
               "legitimate large inputs are rejected",
               ("AML.T0029", "AML.T0034"), ("ML01",), (_A,), "aisec serve input limits"),
    Mitigation("drift-monitoring", "Drift monitoring and retraining review",
               "monitoring infrastructure; alerts need a person",
               ("AML.T0020", "AML.T0046", "AML.T0029"), ("ML08", "ML02"), (_A, _I), "aisec serve drift monitor"),
    Mitigation("output-integrity", "Integrity of the response channel: TLS, signed responses, least privilege",
               "key management; small latency",
               (), ("ML09",), (_I, _C), "gateway auth"),
    Mitigation("incident-plan", "Incident response plan for AI-specific attacks",
               "people's time to write and rehearse it",
               ("AML.T0043", "AML.T0015", "AML.T0020", "AML.T0018", "AML.T0024", "AML.T0029", "AML.T0010"),
               tuple(OWASP_ML_TOP10), (_I, _A, _C, _P)),
)  # fmt: skip

MITIGATIONS_BY_ID: dict[str, Mitigation] = {m.id: m for m in MITIGATIONS}


def _covers(prefix: str, technique: str) -> bool:
    """An ATLAS id covers itself and its sub-techniques (``AML.T0024`` covers ``AML.T0024.002``)."""
    return technique == prefix or technique.startswith(prefix + ".")


def technique_of(attack: str | None = None, atlas: str | None = None) -> Technique | None:
    """The ATLAS technique of an id (or of a parent id), else of a known attack name."""
    ids = [atlas] if atlas else []
    if attack in ATTACK_TECHNIQUES:
        ids.append(ATTACK_TECHNIQUES[attack][0])
    for tid in ids:
        parts = tid.split(".")
        for n in range(len(parts), 1, -1):
            found = TECHNIQUES.get(".".join(parts[:n]))
            if found:
                return found
    return None


def mitigations_for(
    *, attack: str | None = None, atlas: str | None = None, owasp: str | None = None, goal: Goal | str | None = None
) -> list[Mitigation]:
    """Mitigations that address an attack, by its ATLAS technique and OWASP id (or its known name).

    The ATLAS technique decides; the OWASP id is the fallback when no mitigation names the
    technique (an attack whose technique this catalog does not list yet). ``goal`` keeps only
    mitigations that serve that goal, when some do.
    """
    atlas = atlas or (ATTACK_TECHNIQUES.get(attack or "", ("", ""))[0])
    owasp = owasp or (ATTACK_TECHNIQUES.get(attack or "", ("", ""))[1])
    by_atlas = [m for m in MITIGATIONS if atlas and any(_covers(p, atlas) for p in m.atlas)]
    by_owasp = [m for m in MITIGATIONS if owasp and owasp in m.owasp]
    found = by_atlas if any(m.id != "incident-plan" for m in by_atlas) else by_owasp
    if goal is not None:
        g = Goal.parse(goal)
        mine = [m for m in found if g in m.goals]
        found = mine or found
    # the incident plan applies to everything: keep it last
    return sorted(found, key=lambda m: m.id == "incident-plan")


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """Everything the report says about one attack: ids, names and mitigations."""

    attack: str
    atlas: str
    atlas_name: str
    owasp: str
    owasp_name: str
    nist: tuple[str, ...]
    mitigations: tuple[Mitigation, ...]


def entry_for(attack: str, *, atlas: str = "", owasp: str = "", goal: Goal | str | None = None) -> CatalogEntry:
    """The catalog entry of an attack (pass a finding's ``atlas``/``owasp`` when it has them)."""
    known = ATTACK_TECHNIQUES.get(attack, ("", ""))
    atlas, owasp = atlas or known[0], owasp or known[1]
    tech = technique_of(attack, atlas)
    return CatalogEntry(
        attack=attack,
        atlas=atlas,
        atlas_name=tech.name if tech else "",
        owasp=owasp,
        owasp_name=OWASP_ML_TOP10.get(owasp, ""),
        nist=tech.nist if tech else (),
        mitigations=tuple(mitigations_for(attack=attack, atlas=atlas, owasp=owasp, goal=goal)),
    )


# --------------------------------------------------------------------------------------------
# checklist

Phase = Literal["data", "training", "deployment", "monitoring"]


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    """One item of the AI security checklist.

    ``attacks`` names the ATLAS techniques whose findings give aisec evidence on the item; an item
    without them is for a human to confirm.
    """

    id: str
    phase: Phase
    text: str
    how: str
    atlas: tuple[str, ...] = ()

    @property
    def verified_by_aisec(self) -> bool:
        return bool(self.atlas)


CHECKLIST: tuple[ChecklistItem, ...] = (
    ChecklistItem("provenance", "data", "Training data has documented provenance and integrity checks",
                  "for a human to confirm: aisec cannot see where data came from"),
    ChecklistItem("data-access", "data", "Write access to training data is restricted and logged",
                  "for a human to confirm"),
    ChecklistItem("pii", "data", "Personal and secret data are minimized before training",
                  "aisec measures leakage with membership, inversion and attribute attacks; "
                  "the data inventory is for a human", ("AML.T0024.000", "AML.T0024.001")),
    ChecklistItem("poisoning-detection", "data", "Poisoned or mislabeled training points are detected",
                  "aisec measures the effect of poisoning attacks; the pipeline's filter is for a human",
                  ("AML.T0020", "AML.T0018", "AML.T0043.004")),
    ChecklistItem("dependencies", "training", "Dependencies and model files are vetted (no unsafe pickles)",
                  "aisec scan / model-scan inspects the model file", ("AML.T0010", "AML.T0011.000")),
    ChecklistItem("adversarial-robustness", "training", "The model resists adversarial inputs at the threat model's eps",
                  "aisec runs evasion attacks (white-box, black-box, transfer)", ("AML.T0043", "AML.T0015")),
    ChecklistItem("differential-privacy", "training", "Training bounds what the model memorizes (e.g. DP-SGD)",
                  "aisec runs membership inference; the DP budget itself is for a human", ("AML.T0024.000",)),
    ChecklistItem("watermarking", "training", "The model carries a watermark to prove theft",
                  "for a human to confirm (aisec's watermark defense adds one)"),
    ChecklistItem("extraction-resistance", "deployment", "The model cannot be copied within the query budget",
                  "aisec runs extraction attacks at the threat model's budget", ("AML.T0024.002",)),
    ChecklistItem("api-auth-rate-limits", "deployment", "The API authenticates clients and enforces rate limits",
                  "for a human to confirm; aisec serve provides both"),
    ChecklistItem("least-privilege", "deployment", "The model service runs with least privilege",
                  "for a human to confirm"),
    ChecklistItem("availability", "deployment", "Harmless inputs keep passing; crafted inputs cannot exhaust the service",
                  "aisec runs availability attacks", ("AML.T0029", "AML.T0034", "AML.T0046")),
    ChecklistItem("drift-query-monitoring", "monitoring", "Input drift and suspicious query patterns are monitored",
                  "for a human to confirm; aisec serve provides drift and extraction monitors"),
    ChecklistItem("incident-plan", "monitoring", "An incident response plan covers AI-specific attacks",
                  "for a human to confirm"),
    ChecklistItem("model-inventory", "monitoring", "Every deployed model is in an inventory with owner and version",
                  "for a human to confirm"),
)  # fmt: skip

ChecklistStatus = Literal["verified: pass", "verified: fail", "not run", "for a human to confirm"]


def checklist_status(findings: Iterable[object], scorecard: object | None = None) -> list[tuple[ChecklistItem, str]]:
    """Each checklist item with what this run says about it.

    ``findings`` are :class:`~aisec.core.findings.Finding`; ``scorecard``
    (:class:`~aisec.assess.scoring.Scorecard`, by default the findings scored at the normal need)
    decides pass / fail from the checks of the findings that bear on an item.
    """
    findings = list(findings)
    if scorecard is None:
        from aisec.assess.scoring import score_findings

        scorecard = score_findings(findings, {g: "normal" for g in Goal})  # type: ignore[arg-type]
    failed_jobs: set[str] = set()
    for row in scorecard.goals:  # type: ignore[attr-defined]
        failed_jobs |= {c.job_id for c in row.checks if c.passed is False}
    out: list[tuple[ChecklistItem, str]] = []
    for item in CHECKLIST:
        if not item.verified_by_aisec:
            out.append((item, "for a human to confirm"))
            continue
        mine = []
        for f in findings:
            atlas = getattr(f, "atlas", "") or ATTACK_TECHNIQUES.get(getattr(f, "attack", ""), ("", ""))[0]
            if getattr(f, "status", "ok") == "ok" and any(_covers(p, atlas) for p in item.atlas):
                mine.append(f)
        if not mine:
            out.append((item, "not run"))
        elif any(f.job_id in failed_jobs for f in mine):  # type: ignore[attr-defined]
            out.append((item, "verified: fail"))
        else:
            out.append((item, "verified: pass"))
    return out


def catalog_markdown() -> str:
    """The tables of ``docs/catalog.md``: attacks, mitigations and the checklist."""
    out = [
        "## Attacks",
        "",
        "| attack | ATLAS | technique | OWASP | NIST AI RMF | mitigations |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(ATTACK_TECHNIQUES):
        e = entry_for(name)
        out.append(
            f"| `{name}` | {e.atlas} | {e.atlas_name} | {e.owasp} {e.owasp_name} | {', '.join(e.nist)} | "
            f"{', '.join(m.id for m in e.mitigations)} |"
        )
    out += [
        "",
        "## Mitigations",
        "",
        "| id | mitigation | what it costs | ATLAS | OWASP | in aisec |",
        "|---|---|---|---|---|---|",
    ]
    for m in MITIGATIONS:
        out.append(
            f"| `{m.id}` | {m.name} | {m.cost} | {', '.join(m.atlas) or '-'} | {', '.join(m.owasp)} | {m.in_aisec or '-'} |"
        )
    out += ["", "## AI security checklist", "", "| phase | item | verified by aisec | how |", "|---|---|---|---|"]
    for item in CHECKLIST:
        out.append(f"| {item.phase} | {item.text} | {'yes' if item.verified_by_aisec else 'no'} | {item.how} |")
    return "\n".join(out) + "\n"


__all__ = [
    "ATTACK_TECHNIQUES",
    "CHECKLIST",
    "MITIGATIONS",
    "MITIGATIONS_BY_ID",
    "OWASP_ML_TOP10",
    "TECHNIQUES",
    "CatalogEntry",
    "ChecklistItem",
    "Mitigation",
    "Technique",
    "catalog_markdown",
    "checklist_status",
    "entry_for",
    "mitigations_for",
    "technique_of",
]
