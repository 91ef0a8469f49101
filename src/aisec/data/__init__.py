"""Data: bundled sets, file loaders and the splits an assessment records."""

from aisec.data.dataset import Dataset, MembershipSplit, split_indices
from aisec.data.font_digits import load_font_digits
from aisec.data.loaders import (
    LOADERS,
    find_sms_spam,
    load_breast_cancer,
    load_csv,
    load_digits,
    load_npz,
    load_sms_spam,
)

__all__ = [
    "LOADERS",
    "Dataset",
    "MembershipSplit",
    "find_sms_spam",
    "load_breast_cancer",
    "load_csv",
    "load_digits",
    "load_font_digits",
    "load_npz",
    "load_sms_spam",
    "split_indices",
]
