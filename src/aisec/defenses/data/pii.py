"""Find personal data in text and tabular data: e-mail addresses, phone numbers, payment cards,
IBANs, national ids and IP addresses, and write a redacted copy.

Detection is by pattern plus a check where one exists, so that a random digit run is not reported:
payment card numbers must pass the Luhn checksum (ISO/IEC 7812-1), IBANs the ISO 13616 mod-97
check, US social security numbers the SSA's never-issued ranges, UK national insurance numbers
HMRC's prefix rules, IP addresses the octet/hextet ranges (via :mod:`ipaddress`). Phone numbers are
numbers with a national trunk prefix (``0`` + 9-10 digits, the UK/EU form that the SMS Spam
Collection uses), an international ``+`` prefix, or the North-American ``(NNN) NNN-NNNN`` form;
5-6 digit SMS short codes are service numbers, not a person's, and are not reported.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aisec.errors import ConfigError

KINDS = ("email", "phone", "card", "iban", "ssn", "nino", "ip")

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}(?![\w-])")
_PHONE_NATIONAL = re.compile(r"(?<![\d+])0\d{2,4}(?:[ -]?\d{2,4}){1,3}(?!\d)")
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}[ -]?\(?\d{1,4}\)?(?:[ -]?\d{2,4}){2,4}(?!\d)")
_PHONE_NANP = re.compile(r"(?<!\d)\(\d{3}\)[ ]?\d{3}[ .-]\d{4}(?!\d)|(?<![\d-])\d{3}[.-]\d{3}[.-]\d{4}(?![\d-])")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_NINO = re.compile(r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a digit string (payment card numbers)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616 check: move the first four characters to the end, letters to numbers, mod 97 == 1."""
    s = iban.replace(" ", "").upper()
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)


def _phones(text: str) -> Iterator[tuple[int, int]]:
    for m in _PHONE_INTL.finditer(text):
        if 8 <= len(_digits(m.group())) <= 15:
            yield m.span()
    for m in _PHONE_NATIONAL.finditer(text):
        # the pattern may run on into a following number ("08452810071 16"): keep the longest
        # leading run of groups that has the 10-11 digits of a national number
        best = None
        for g in re.finditer(r"\d+", m.group()):
            if 10 <= len(_digits(m.group()[: g.end()])) <= 11:
                best = g.end()
        if best is not None:
            yield m.start(), m.start() + best
    for m in _PHONE_NANP.finditer(text):
        yield m.span()


def _ips(text: str) -> Iterator[tuple[int, int]]:
    for pattern in (_IPV4, _IPV6):
        for m in pattern.finditer(text):
            if not any(c.isalnum() for c in m.group()):
                continue  # a bare "::" is punctuation, not an address
            try:
                ipaddress.ip_address(m.group())
            except ValueError:
                continue
            yield m.span()


def find_pii(text: str, kinds: Sequence[str] = KINDS) -> list[tuple[str, int, int]]:
    """``(kind, start, end)`` of every piece of personal data found in ``text``, without overlaps.

    Where two detections overlap, the longer one is kept (an IBAN wins over the card-like digit
    run inside it).
    """
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ConfigError(f"kinds: {', '.join(unknown)} is not allowed; allowed: {', '.join(KINDS)}")
    found: list[tuple[str, int, int]] = []
    want = set(kinds)
    if "email" in want:
        found += [("email", *m.span()) for m in _EMAIL.finditer(text)]
    if "iban" in want:
        found += [("iban", *m.span()) for m in _IBAN.finditer(text) if iban_ok(m.group())]
    if "card" in want:
        found += [("card", *m.span()) for m in _CARD.finditer(text) if luhn_ok(_digits(m.group()))]
    if "ssn" in want:
        found += [("ssn", *m.span()) for m in _SSN.finditer(text)]
    if "nino" in want:
        found += [("nino", *m.span()) for m in _NINO.finditer(text)]
    if "ip" in want:
        found += [("ip", *span) for span in _ips(text)]
    if "phone" in want:
        found += [("phone", *span) for span in _phones(text)]
    found.sort(key=lambda f: (f[1], -(f[2] - f[1])))
    kept: list[tuple[str, int, int]] = []
    for kind, start, end in found:
        if kept and start < kept[-1][2]:
            continue  # overlaps a longer (or earlier) detection
        kept.append((kind, start, end))
    return kept


@dataclass(frozen=True, slots=True)
class PiiMatch:
    """One piece of personal data: where it is and what kind (the value itself is kept masked)."""

    kind: str
    record: int
    """Line number (text) or row number (CSV, header excluded), from 1."""
    field: str | None
    start: int
    end: int
    masked: str


def _mask(value: str) -> str:
    keep = 2 if len(value) > 6 else 0
    return value[:keep] + "*" * (len(value) - 2 * keep) + (value[-keep:] if keep else "")


@dataclass(slots=True)
class PiiReport:
    """Counts and locations of personal data in one file."""

    path: str
    records: int = 0
    matches: list[PiiMatch] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(m.kind for m in self.matches)
        return {k: c.get(k, 0) for k in KINDS}

    @property
    def records_with_pii(self) -> int:
        return len({m.record for m in self.matches})

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "records": self.records,
            "records_with_pii": self.records_with_pii,
            "counts": self.counts,
            "matches": [
                {
                    "kind": m.kind,
                    "record": m.record,
                    "field": m.field,
                    "start": m.start,
                    "end": m.end,
                    "masked": m.masked,
                }
                for m in self.matches
            ],
        }


def _records(path: Path) -> Iterator[tuple[int, str | None, str]]:
    """(record number, field name, text) for every cell of a CSV, or every line of a text file."""
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="", encoding="utf-8", errors="replace") as fh:
                reader = csv.reader(fh)
                header = next(reader, [])
                for n, row in enumerate(reader, 1):
                    for i, cell in enumerate(row):
                        yield n, header[i] if i < len(header) else str(i), cell
            return
        with path.open(encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                yield n, None, line.rstrip("\n")
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder; give a text or CSV file") from None


def scan_text_records(records: Iterable[tuple[int, str | None, str]], *, path: str = "-",
                      kinds: Sequence[str] = KINDS) -> PiiReport:  # fmt: skip
    """Scan ``(record, field, text)`` triples."""
    report = PiiReport(path=path)
    seen: set[int] = set()
    for record, fld, text in records:
        seen.add(record)
        for kind, start, end in find_pii(text, kinds):
            report.matches.append(PiiMatch(kind, record, fld, start, end, _mask(text[start:end])))
    report.records = len(seen)
    return report


def scan_file(path: str | Path, *, kinds: Sequence[str] = KINDS) -> PiiReport:
    """Scan a text file (one record per line) or a CSV file (every cell; header excluded)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no such file: {path}")
    return scan_text_records(_records(path), path=str(path), kinds=kinds)


def redact(text: str, kinds: Sequence[str] = KINDS) -> str:
    """``text`` with every detection replaced by ``[KIND]``."""
    out, last = [], 0
    for kind, start, end in find_pii(text, kinds):
        out += [text[last:start], f"[{kind.upper()}]"]
        last = end
    return "".join(out) + text[last:]


def write_redacted(path: str | Path, out: str | Path, *, kinds: Sequence[str] = KINDS) -> int:
    """Write a redacted copy of a text or CSV file; returns how many detections were replaced."""
    path, out = Path(path), Path(out)
    if path.resolve() == out.resolve():
        raise ConfigError("--redact: write the redacted copy to another file, not over the original")
    replaced = 0
    if path.suffix.lower() == ".csv":
        with (
            path.open(newline="", encoding="utf-8", errors="replace") as src,
            out.open("w", newline="", encoding="utf-8") as dst,
        ):
            reader, writer = csv.reader(src), csv.writer(dst)
            writer.writerow(next(reader, []))
            for row in reader:
                replaced += sum(len(find_pii(c, kinds)) for c in row)
                writer.writerow([redact(c, kinds) for c in row])
        return replaced
    with path.open(encoding="utf-8", errors="replace") as src, out.open("w", encoding="utf-8") as dst:
        for line in src:
            body = line.rstrip("\n")
            replaced += len(find_pii(body, kinds))
            dst.write(redact(body, kinds) + ("\n" if line.endswith("\n") else ""))
    return replaced
