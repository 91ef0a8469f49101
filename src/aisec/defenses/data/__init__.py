"""Defenses of the training data: PII scanning and redaction, provenance manifests."""

from aisec.defenses.data.pii import KINDS, PiiReport, find_pii, redact, scan_file, write_redacted
from aisec.defenses.data.provenance import build_manifest, load_manifest, verify, write_manifest

__all__ = [
    "KINDS",
    "PiiReport",
    "build_manifest",
    "find_pii",
    "load_manifest",
    "redact",
    "scan_file",
    "verify",
    "write_manifest",
    "write_redacted",
]
