"""``aisec threat-model``: ask what must be protected, write the spec's ``threat_model`` section.

The questions follow the protection-need analysis of the project's design: what a wrong answer,
a refused harmless input, a stolen model and a leaked record cost; whether the model decides
about people or safety; what the training data holds; who can query the model and how often;
whether outsiders can contribute training data. :func:`derive_threat_model` turns answers into
a threat model (knowledge, capabilities, budget, a need per goal) and one sentence per choice
that says why. Answers come from the terminal (:func:`ask`), a YAML file, or flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Any, Literal

import yaml
from pydantic import ValidationError

from aisec.core.config import ThreatModelSpec
from aisec.core.goals import Goal, Knowledge, OutputKind, ProtectionNeed
from aisec.errors import ConfigError

Level = Literal["low", "medium", "high"]
Audience = Literal["public", "customers", "internal", "owner"]

_LEVELS = ("low", "medium", "high")
_AUDIENCES = ("public", "customers", "internal", "owner")
_ORDER = (ProtectionNeed.NORMAL, ProtectionNeed.HIGH, ProtectionNeed.VERY_HIGH)
_BY_LEVEL = dict(zip(_LEVELS, _ORDER, strict=True))
#: Days of queries one attacker is assumed to spend on one attack.
ATTACK_DAYS = 30


@dataclass(frozen=True, kw_only=True, slots=True)
class Answers:
    """The answers to the questionnaire; every field has the default a cautious owner would pick."""

    decides_about_people: bool = False
    """Does the model decide about people (credit, hiring, health) or about safety?"""
    personal_data: bool = False
    """Does the training data hold personal data?"""
    secret_data: bool = False
    """Does the training data hold trade secrets or other confidential records?"""
    proprietary_model: bool = True
    """Is the model itself proprietary (not published, costly to train)?"""
    architecture_public: bool = False
    """Are the architecture, training recipe or a sample of the data known to outsiders?"""
    who_can_query: Audience = "customers"
    """Who can send queries: the public, customers, internal staff, or only the owner."""
    queries_per_day: int | None = 1000
    """Queries one client may send per day (``None``: not limited)."""
    output: OutputKind = OutputKind.PROBABILITIES
    """What the API returns."""
    outsiders_contribute_data: bool = False
    """Can outsiders contribute training data (feedback, user uploads, scraped content)?"""
    outsiders_label_data: bool = False
    """...and choose the labels of what they contribute?"""
    cost_wrong_answer: Level = "medium"
    cost_refused_input: Level = "medium"
    cost_stolen_model: Level = "medium"
    cost_leaked_record: Level = "medium"
    epsilon: float | None = None
    """Perturbation budget for evasion attacks (input units, L-inf); ``None`` keeps the attacks' defaults."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Answers:
        """Answers from a mapping (a YAML answers file), checking names and values."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(map(str, data)) - known)
        if unknown:
            raise ConfigError(f"answers: unknown question(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            kwargs[str(key)] = _check(str(key), value)
        return cls(**kwargs)


def _check(key: str, value: Any) -> Any:
    bools = {
        "decides_about_people", "personal_data", "secret_data", "proprietary_model", "architecture_public",
        "outsiders_contribute_data", "outsiders_label_data",
    }  # fmt: skip
    if key in bools:
        if not isinstance(value, bool):
            raise ConfigError(f"answers.{key}: expected true or false, got {value!r}")
        return value
    if key.startswith("cost_"):
        text = str(value).strip().lower()
        if text not in _LEVELS:
            raise ConfigError(f"answers.{key}: {value!r} is not allowed; allowed: {', '.join(_LEVELS)}")
        return text
    if key == "who_can_query":
        text = str(value).strip().lower()
        if text not in _AUDIENCES:
            raise ConfigError(f"answers.who_can_query: {value!r} is not allowed; allowed: {', '.join(_AUDIENCES)}")
        return text
    if key == "queries_per_day":
        if value is None or (isinstance(value, str) and value.strip().lower() in ("unlimited", "none")):
            return None
        if isinstance(value, str) and value.strip().isdigit():  # from a command-line flag
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"answers.queries_per_day: expected a non-negative integer or 'unlimited', got {value!r}")
        return value
    if key == "output":
        return OutputKind.parse(value, field="answers.output")
    if key == "epsilon":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"answers.epsilon: expected a number >= 0, got {value!r}")
        return float(value)
    raise ConfigError(f"answers: unknown question {key!r}")  # pragma: no cover - from_mapping checks names


def _at_least(need: ProtectionNeed, floor: ProtectionNeed) -> ProtectionNeed:
    return max(need, floor, key=_ORDER.index)


def derive_threat_model(answers: Answers | Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Turn answers into a spec's ``threat_model`` section and one explanation per derived choice.

    Returns
    -------
    (dict, dict)
        The section (validated by :class:`~aisec.core.config.ThreatModelSpec`, JSON-ready) and
        explanations keyed by ``knowledge``, ``output``, ``query_budget``, ``training_data`` and
        ``needs.<goal>``.
    """
    a = answers if isinstance(answers, Answers) else Answers.from_mapping(answers)
    why: dict[str, str] = {}

    if not a.proprietary_model:
        knowledge = Knowledge.WHITE_BOX
        why["knowledge"] = "white-box: the model is not proprietary, so an attacker can obtain its parameters."
    elif a.architecture_public:
        knowledge = Knowledge.GREY_BOX
        why["knowledge"] = "grey-box: the model is private but its architecture, recipe or data sample is known."
    else:
        knowledge = Knowledge.BLACK_BOX
        why["knowledge"] = "black-box: the model and how it was built are private; attackers only query it."

    why["output"] = f"{a.output.value}: this is what the prediction API returns to a client."

    if a.queries_per_day is None:
        budget: int | None = None
        why["query_budget"] = "unlimited: nothing limits how many queries a client sends."
    else:
        budget = a.queries_per_day * ATTACK_DAYS
        if a.who_can_query == "owner":
            budget = min(budget, 1000)
        why["query_budget"] = (
            f"{budget}: {a.queries_per_day} queries a day for {ATTACK_DAYS} days by one {a.who_can_query} client"
            + (" (capped at 1000: only the owner queries it)" if a.who_can_query == "owner" else "")
            + "."
        )

    training_data: list[str] = []
    if a.outsiders_contribute_data:
        training_data.append("add-points")
        if a.outsiders_label_data:
            training_data.append("flip-labels")
        why["training_data"] = "outsiders contribute training data, so they can add poisoned points" + (
            " and choose their labels." if a.outsiders_label_data else "."
        )
    else:
        why["training_data"] = "none: only the owner writes the training data."

    needs: dict[Goal, ProtectionNeed] = {}
    # integrity
    need = _BY_LEVEL[a.cost_wrong_answer]
    reason = f"a wrong answer costs {a.cost_wrong_answer}"
    if a.decides_about_people:
        need = _at_least(need, ProtectionNeed.HIGH)
        reason += "; the model decides about people or safety, so at least high"
    if a.outsiders_contribute_data:
        need = _at_least(need, ProtectionNeed.HIGH)
        reason += "; outsiders can poison its training data, so at least high"
    needs[Goal.INTEGRITY] = need
    why["needs.integrity"] = f"{need.value}: {reason}."
    # availability
    need = _BY_LEVEL[a.cost_refused_input]
    reason = f"a refused harmless input costs {a.cost_refused_input}"
    if a.who_can_query == "public":
        need = _at_least(need, ProtectionNeed.HIGH)
        reason += "; anyone can flood the public API, so at least high"
    needs[Goal.AVAILABILITY] = need
    why["needs.availability"] = f"{need.value}: {reason}."
    # confidentiality
    if a.proprietary_model:
        need = _BY_LEVEL[a.cost_stolen_model]
        reason = f"the model is proprietary and a stolen copy costs {a.cost_stolen_model}"
    else:
        need = ProtectionNeed.NORMAL
        reason = "the model is not proprietary, so a copy reveals little"
    if a.secret_data:
        need = _at_least(need, ProtectionNeed.HIGH)
        reason += "; its training data holds secrets a copy could reveal, so at least high"
    needs[Goal.CONFIDENTIALITY] = need
    why["needs.confidentiality"] = f"{need.value}: {reason}."
    # privacy
    if a.personal_data:
        need = _at_least(_BY_LEVEL[a.cost_leaked_record], ProtectionNeed.HIGH)
        reason = (
            f"a leaked record costs {a.cost_leaked_record}; the training data holds personal data, so at least high"
        )
    elif a.secret_data:
        need = _BY_LEVEL[a.cost_leaked_record]
        reason = f"the training data holds confidential records and a leaked record costs {a.cost_leaked_record}"
    else:
        need = ProtectionNeed.NORMAL
        reason = "the training data holds no personal or secret records"
    needs[Goal.PRIVACY] = need
    why["needs.privacy"] = f"{need.value}: {reason}."

    section = {
        "knowledge": knowledge.value,
        "output": a.output.value,
        "query_budget": budget,
        "training_data": training_data,
        "needs": {g.value: needs[g].value for g in Goal},
    }
    if a.epsilon is not None:
        section["epsilon"] = a.epsilon
    try:
        ThreatModelSpec.model_validate(section)
    except ValidationError as exc:  # pragma: no cover - the derivation only produces valid values
        raise ConfigError(f"derived threat model is invalid: {exc.errors()[0]['msg']}") from None
    return section, why


def ask(defaults: Answers | None = None, *, console: Any = None, stream: IO[str] | None = None) -> Answers:
    """Ask the questions in the terminal with rich prompts; ``defaults`` pre-fill the answers."""
    from rich.console import Console
    from rich.prompt import Confirm, IntPrompt, Prompt

    d = defaults or Answers()
    con = console or Console()

    def yes(q: str, default: bool) -> bool:
        return Confirm.ask(q, default=default, console=con, stream=stream)

    def pick(q: str, choices: tuple[str, ...], default: str) -> str:
        return Prompt.ask(q, choices=list(choices), default=default, console=con, stream=stream)

    con.print("[bold]Protection needs[/bold]: answer for the application the model serves.")
    people = yes("Does the model decide about people (credit, hiring, health) or about safety?", d.decides_about_people)
    personal = yes("Does its training data hold personal data?", d.personal_data)
    secret = yes("Does its training data hold trade secrets or other confidential records?", d.secret_data)
    proprietary = yes("Is the model itself proprietary (weights not published)?", d.proprietary_model)
    arch = (
        yes("Are its architecture, training recipe or a data sample known to outsiders?", d.architecture_public)
        if proprietary
        else d.architecture_public
    )
    who = pick("Who can query it?", _AUDIENCES, d.who_can_query)
    limited = yes("Is the number of queries per client limited?", d.queries_per_day is not None)
    per_day: int | None = None
    if limited:
        per_day = IntPrompt.ask(
            "How many queries may one client send per day?", default=d.queries_per_day or 1000, console=con,
            stream=stream,
        )  # fmt: skip
    output = pick("What does the API return?", tuple(o.value for o in OutputKind), d.output.value)
    contribute = yes("Can outsiders contribute training data (feedback, uploads)?", d.outsiders_contribute_data)
    label = yes("...and choose the labels?", d.outsiders_label_data) if contribute else False
    costs = {
        "cost_wrong_answer": pick("What does a wrong answer cost?", _LEVELS, d.cost_wrong_answer),
        "cost_refused_input": pick("What does a refused harmless input cost?", _LEVELS, d.cost_refused_input),
        "cost_stolen_model": pick("What does a stolen model cost?", _LEVELS, d.cost_stolen_model),
        "cost_leaked_record": pick("What does a leaked training record cost?", _LEVELS, d.cost_leaked_record),
    }
    return Answers.from_mapping(
        {
            "decides_about_people": people,
            "personal_data": personal,
            "secret_data": secret,
            "proprietary_model": proprietary,
            "architecture_public": arch,
            "who_can_query": who,
            "queries_per_day": per_day if per_day is None or per_day >= 0 else 0,
            "output": output,
            "outsiders_contribute_data": contribute,
            "outsiders_label_data": label,
            "epsilon": d.epsilon,
            **costs,
        }
    )


def load_answers(path: Path) -> dict[str, Any]:
    """Read a YAML answers file (a mapping of question name to answer)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of question: answer")
    return data


def render_section(
    section: Mapping[str, Any], why: Mapping[str, str], existing: Mapping[str, Any] | None = None
) -> str:
    """YAML text: the explanations as comments, then the spec (``existing`` with its threat model replaced)."""
    lines = ["# threat model derived by 'aisec threat-model':"]
    lines += [f"#   {key}: {text}" for key, text in why.items()]
    body = dict(existing or {})
    body["threat_model"] = dict(section)
    return "\n".join(lines) + "\n" + yaml.safe_dump(body, sort_keys=False)


def threat_model_command(
    *,
    answers_file: Path | None = None,
    out: Path | None = None,
    interactive: bool = True,
    overrides: Mapping[str, Any] | None = None,
    console: Any = None,
    stream: IO[str] | None = None,
) -> int:
    """Run the questionnaire and write or print the ``threat_model`` section.

    Parameters
    ----------
    answers_file:
        YAML answers file; its answers are the defaults (and, non-interactively, the answers).
    out:
        Spec file to write; when it exists its ``threat_model`` section is replaced and the rest
        kept. ``None`` prints the section.
    interactive:
        Ask in the terminal; ``False`` takes the answers from the file, ``overrides`` and defaults.
    overrides:
        Answers given as flags (``None`` values are ignored); they win over the file.
    """
    from rich.console import Console

    con = console or Console()
    given = dict(load_answers(answers_file)) if answers_file else {}
    given.update({k: v for k, v in (overrides or {}).items() if v is not None})
    answers = Answers.from_mapping(given)
    if interactive:
        answers = ask(answers, console=con, stream=stream)
    section, why = derive_threat_model(answers)
    existing: dict[str, Any] | None = None
    if out is not None and out.is_file():
        loaded = yaml.safe_load(out.read_text(encoding="utf-8"))
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{out}: expected a spec (a mapping), refusing to overwrite it")
        existing = loaded
    text = render_section(section, why, existing)
    for key, sentence in why.items():
        con.print(f"[bold]{key}[/bold]: {sentence}", highlight=False, soft_wrap=True)
    if out is None:
        con.print(text, highlight=False, markup=False, soft_wrap=True)
    else:
        out.write_text(text, encoding="utf-8")
        con.print(f"wrote {out}", highlight=False)
    return 0


__all__ = [
    "ATTACK_DAYS",
    "Answers",
    "ask",
    "derive_threat_model",
    "load_answers",
    "render_section",
    "threat_model_command",
]
