"""PII scan: each kind with its checksum, no false alarms on look-alikes, redaction, and precision /
recall on a hand-labeled sample of the SMS Spam Collection."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aisec.defenses.data.pii import find_pii, iban_ok, luhn_ok, redact, scan_file, write_redacted
from aisec.errors import ConfigError

SMS = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "sms_spam" / "SMSSpamCollection"

# Hand-labeled: 60 messages drawn at random (seed 7) from the 703 that hold a run of 3+ digits or an '@';
# line index (0-based) -> the phone numbers a person reads in it (digits only). SMS short codes
# (5-6 digits, e.g. "text WIN to 86688") are premium service numbers, not phone numbers, and not labeled.
LABELED = {
    296: ["08450213680"], 358: ["08708800282"], 368: ["08717205546"], 375: ["09057039994"], 424: ["09058094455"],
    433: ["09066382422"], 455: ["08001956669"], 471: ["09061743806"], 474: [], 527: ["08717898035"], 541: [],
    648: ["08715203694"], 673: ["08452810071"], 710: ["08000938767"], 718: [], 761: ["08704439680"], 833: [],
    856: [], 910: ["08709222922", "08712460324"], 1007: ["08000839402"], 1060: [], 1252: ["08712402779"],
    1366: ["08707509020"], 1536: [], 1625: [], 1673: ["09050001295"], 1687: ["09063442151"], 1830: [],
    2220: ["08714712379"], 2338: [], 2473: [], 2826: ["08712103738"], 2881: [], 3111: ["08708034412"], 3126: [],
    3316: ["07781482378"], 3334: ["09050000928"], 3397: ["09058095201"], 3460: ["01223585236"], 3981: [], 4047: [],
    4236: [], 4268: [], 4311: ["09058091854"], 4359: ["09058091870"], 4436: ["08718730666", "08712460324"],
    4460: ["08719839835"], 4514: [], 4527: [], 4577: [], 4602: [], 4647: ["08000930705"], 4652: ["09066380611"],
    4676: [], 4985: [], 5043: ["08701213186"], 5060: ["08001950382"], 5122: [], 5230: ["08715203656"],
    5526: ["09061221061"],
}  # fmt: skip


@pytest.mark.skipif(not SMS.is_file(), reason=f"SMS Spam Collection not found at {SMS}")
def test_phone_precision_and_recall_on_the_hand_labeled_sms_sample() -> None:
    lines = SMS.read_text(encoding="utf-8", errors="replace").splitlines()
    tp = fp = fn = 0
    for idx, truth in LABELED.items():
        text = lines[idx]
        found = [re.sub(r"\D", "", text[s:e]) for k, s, e in find_pii(text) if k == "phone"]
        tp += sum(1 for f in found if f in truth)
        fp += sum(1 for f in found if f not in truth)
        fn += sum(1 for t in truth if t not in found)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert tp + fn == 38  # the labeled phone numbers
    assert precision >= 0.95 and recall >= 0.95, (precision, recall, tp, fp, fn)


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("write to bob.smith@example.co.uk today", "email", "bob.smith@example.co.uk"),
        ("call 0845 021 3680 now", "phone", "0845 021 3680"),
        ("ring +44 20 7946 0958", "phone", "+44 20 7946 0958"),
        ("US office (415) 555-0132", "phone", "(415) 555-0132"),
        ("card 4111 1111 1111 1111 exp", "card", "4111 1111 1111 1111"),
        ("pay GB82 WEST 1234 5698 7654 32 now", "iban", "GB82 WEST 1234 5698 7654 32"),
        ("ssn 123-45-6789", "ssn", "123-45-6789"),
        ("NI number AB123456C", "nino", "AB123456C"),
        ("from 192.168.1.20 and", "ip", "192.168.1.20"),
        ("v6 fe80::1 link", "ip", "fe80::1"),
    ],
)
def test_each_kind_is_found(text: str, kind: str, value: str) -> None:
    found = [(k, text[s:e]) for k, s, e in find_pii(text)]
    assert found == [(kind, value)]


@pytest.mark.parametrize(
    "text",
    [
        "text WIN to 86688 now",  # SMS short code
        "card 4111 1111 1111 1112",  # fails Luhn
        "iban GB82 WEST 1234 5698 7654 33",  # fails mod 97
        "ssn 000-12-3456 and 666-12-3456",  # never issued
        "version 300.1.2.999 and a :: b",  # not IP addresses
        "offer ends 31/10/04, ref RP176781, claim 3030",
        "user@localhost",  # no domain
    ],
)
def test_look_alikes_are_not_reported(text: str) -> None:
    assert find_pii(text) == []


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE89370400440532013001")


def test_redaction_and_csv_fields(tmp_path: Path) -> None:
    assert redact("mail a.b@ex.com or 0845 021 3680") == "mail [EMAIL] or [PHONE]"
    src = tmp_path / "people.csv"
    src.write_text("name,contact,note\nAnn,ann@ex.org,ok\nBo,0207 946 0958,card 4111111111111111\n", encoding="utf-8")
    report = scan_file(src)
    assert report.counts["email"] == 1 and report.counts["phone"] == 1 and report.counts["card"] == 1
    assert {(m.record, m.field, m.kind) for m in report.matches} == {
        (1, "contact", "email"),
        (2, "contact", "phone"),
        (2, "note", "card"),
    }
    assert all("*" in m.masked for m in report.matches)  # the report never repeats the value in full
    out = tmp_path / "redacted.csv"
    assert write_redacted(src, out) == 3
    text = out.read_text()
    assert "ann@ex.org" not in text and "[EMAIL]" in text and "[CARD]" in text and text.startswith("name,contact,note")
    with pytest.raises(ConfigError):
        write_redacted(src, src)


def test_unknown_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="allowed"):
        find_pii("x", kinds=["email", "passport"])
