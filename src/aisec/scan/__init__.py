"""Supply-chain scanner for model files: find the code a model file runs when it is loaded.

A pickle-based model (PyTorch ``.pt``/``.pth``/``.bin``, joblib, ``.pkl``, NumPy object arrays)
runs whatever its author chose the moment it is loaded. :func:`scan_path` reads such files
without loading them, lists every imported global and rates each file ``safe``, ``suspicious``
or ``dangerous``; :func:`check_before_load` is what the loaders call first.
"""

from aisec.scan.finding import to_finding
from aisec.scan.lock import LOCK_NAME, read_lock, sha256_file, verify, verify_pinned, write_lock
from aisec.scan.pickle_ops import PickleScan, scan_pickle_stream
from aisec.scan.results import FileResult, Issue, Rating, ScanReport
from aisec.scan.sarif import to_sarif
from aisec.scan.scanner import ScanLimits, check_before_load, scan_path, scan_paths

__all__ = [
    "LOCK_NAME",
    "FileResult",
    "Issue",
    "PickleScan",
    "Rating",
    "ScanLimits",
    "ScanReport",
    "check_before_load",
    "read_lock",
    "scan_path",
    "scan_paths",
    "scan_pickle_stream",
    "sha256_file",
    "to_finding",
    "to_sarif",
    "verify",
    "verify_pinned",
    "write_lock",
]
