"""Scan files, folders and archives of model files: :func:`scan_path`, :func:`check_before_load`.

Nothing is ever loaded: pickles are walked opcode by opcode, archives are read member by member
in memory (never extracted), compressed streams are inflated on demand within a budget
(:class:`ScanLimits`). A folder is walked recursively (``.git`` and symlinked folders skipped);
a zip or tar archive of model files is opened and each member scanned like a file, up to
``max_depth`` archives deep.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import tarfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from aisec.errors import ConfigError, UntrustedFileError
from aisec.scan.formats import (
    MODEL_FORMATS,
    Part,
    is_pickle,
    keras_lambda_issues,
    looks_like_keras_config,
    scan_hdf5,
    scan_model_zip,
    scan_npy,
    scan_onnx,
    scan_pickle,
    sniff,
    zip_kind,
)
from aisec.scan.lock import sha256_file, verify_pinned
from aisec.scan.results import FileResult, Issue, ScanReport, worst
from aisec.scan.streams import Bounded, LimitReached, compression_of, decompressed

_GiB = 1 << 30
_PICKLES = {"pickle", "joblib", "pytorch-legacy"}
_TORCH = {"pytorch-zip", "torchscript", "pytorch-legacy", "pickle"}
_ONNX_MAX = 2 * _GiB  # protobuf's limit on one message
_EXPANDED = Part("expanded")  # an archive whose members were reported one by one

#: Formats a model extension promises; content of another format is an ``extension-mismatch``.
EXPECTED: dict[str, set[str]] = {
    ".pkl": _PICKLES,
    ".pickle": _PICKLES,
    ".joblib": _PICKLES,
    ".jl": _PICKLES,
    ".sav": _PICKLES,
    ".pt": _TORCH,
    ".pth": _TORCH,
    ".ckpt": _TORCH,
    ".npy": {"npy"},
    ".npz": {"npz"},
    ".onnx": {"onnx"},
    ".safetensors": {"safetensors"},
    ".gguf": {"gguf"},
    ".tflite": {"tflite"},
    ".h5": {"hdf5"},
    ".hdf5": {"hdf5"},
    ".keras": {"keras", "hdf5"},
    ".zip": {"zip", "pytorch-zip", "torchscript", "keras", "npz"},
    ".tar": {"tar", "pytorch-zip", "pytorch-legacy", "pickle"},
}
#: Extensions of data and text, which must not hold a pickle either.
NOT_MODEL = {".json", ".txt", ".md", ".csv", ".tsv", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".xml", ".html", ".py"}
NOT_MODEL |= {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".wav", ".mp3", ".mp4", ".pdf", ".parquet"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanLimits:
    """Budgets that keep a scan of hostile files bounded in time and memory."""

    max_stream_bytes: int = 64 * _GiB
    """Largest pickle stream walked in one file (raw array data skipped by seeking counts too)."""
    max_member_bytes: int = _GiB // 2
    """Largest archive member read into memory."""
    max_decompressed_bytes: int = 8 * _GiB
    """Largest decompressed stream (a compressed joblib file, a .tar.gz)."""
    max_members: int = 20_000
    """Most members scanned per archive."""
    max_depth: int = 3
    """Archives inside archives, at most this deep."""


def _ext(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


class _Scan:
    def __init__(self, limits: ScanLimits) -> None:
        self.limits = limits
        self.report = ScanReport()

    # -- entry points ------------------------------------------------------------------------
    def path(self, path: Path, recursive: bool) -> None:
        if path.is_dir():
            self.report.roots.append(str(path))
            for root, dirs, files in os.walk(path, followlinks=False):
                dirs[:] = sorted(d for d in dirs if d != ".git") if recursive else []
                for name in sorted(files):
                    full = Path(root) / name
                    if full.is_file():
                        self.file(full)
        elif path.is_file():
            self.report.roots.append(str(path))
            self.file(path)
        else:
            raise ConfigError(f"scan: no such file or folder: {path}")

    def file(self, path: Path) -> None:
        try:
            size = path.stat().st_size
            sha = sha256_file(path)
            with path.open("rb") as fh:
                self.stream(fh, str(path), path.name, size, sha, path.parent, 0)
        except OSError as exc:
            issue = Issue(None, None, None, "suspicious", f"cannot read the file: {exc}", "malformed")
            self.report.files.append(FileResult(str(path), "unknown", "suspicious", [issue]))

    def blob(self, data: bytes, display: str, depth: int) -> None:
        sha = hashlib.sha256(data).hexdigest()
        name = display.rsplit("!", 1)[-1]
        self.stream(io.BytesIO(data), display, name, len(data), sha, None, depth)

    # -- one stream --------------------------------------------------------------------------
    def stream(
        self, fh: BinaryIO, display: str, name: str, size: int, sha: str, folder: Path | None, depth: int
    ) -> None:
        head = fh.read(4096)
        fh.seek(0)
        fmt = sniff(head)
        try:
            part = self._dispatch(fh, fmt, head, display, name, size, folder, depth)
        except (RecursionError, MemoryError, LimitReached, ValueError, OSError, EOFError) as exc:
            # hostile input must not stop the scan of the other files: report it instead
            message = f"the scanner could not read this {fmt} file ({type(exc).__name__}: {exc})"
            part = Part(fmt, [Issue(None, None, None, "suspicious", message, "malformed")])
        if part is _EXPANDED:
            return
        if part is None:  # not a model file (kept when its extension claims one: a mismatch)
            if _ext(name) not in EXPECTED:
                self.report.skipped.append(display)
                return
            part = Part(fmt)
        self._mismatch(part, name)
        self.report.files.append(
            FileResult(display, part.format, worst(i.rating for i in part.issues), part.issues, sha, part.globals, size)
        )

    def _dispatch(
        self, fh: BinaryIO, fmt: str, head: bytes, display: str, name: str, size: int, folder: Path | None, depth: int
    ) -> Part | None:
        part: Part | None
        if fmt in ("zip", "tar"):
            part = self.archive(fh, fmt, display, depth)
        elif fmt == "unknown" and (compression := compression_of(head)) is not None:
            part = self.compressed(fh, compression, display, depth)
        elif fmt == "unknown" and is_pickle(self._bounded(fh, size)):
            part = scan_pickle(self._bounded(fh, size))
        elif fmt == "npy":
            part = scan_npy(self._bounded(fh, size))
        elif fmt == "hdf5":
            part = scan_hdf5(fh)
        elif fmt == "onnx" or (fmt == "unknown" and _ext(name) == ".onnx"):
            part = scan_onnx(fh.read(_ONNX_MAX), folder=folder)
        elif fmt == "json":
            data = fh.read(64 << 20)
            part = Part("keras-config", keras_lambda_issues(data)) if looks_like_keras_config(data) else None
        elif fmt in MODEL_FORMATS:
            part = Part(fmt)
        else:
            part = None
        return part

    def _bounded(self, fh: BinaryIO, size: int) -> Bounded:
        fh.seek(0)
        return Bounded(fh, self.limits.max_stream_bytes, size=size, cheap_seek=True)

    def _mismatch(self, part: Part, name: str) -> None:
        ext = _ext(name)
        base = part.format.split("+")[0]
        expected = EXPECTED.get(ext)
        binary_model = base in MODEL_FORMATS and base != "keras-config"
        wrong = (expected is not None and base not in expected) or (ext in NOT_MODEL and binary_model)
        if wrong:
            claims = "/".join(sorted(expected)) if expected else "no model format"
            message = f"the content is {part.format} but the extension {ext} says {claims}"
            part.issues.insert(0, Issue(None, None, None, "suspicious", message, "extension-mismatch"))

    # -- containers --------------------------------------------------------------------------
    def archive(self, fh: BinaryIO, fmt: str, display: str, depth: int) -> Part | None:
        try:
            if fmt == "zip":
                with zipfile.ZipFile(fh) as zf:
                    kind = zip_kind(zf.namelist())
                    if kind != "zip":
                        return scan_model_zip(zf, kind, member_limit=self.limits.max_member_bytes)
                    self.members_zip(zf, display, depth)
            else:
                with tarfile.open(fileobj=fh, mode="r:") as tf:
                    self.members_tar(tf, display, depth)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, ValueError) as exc:
            issue = Issue(None, None, None, "suspicious", f"broken {fmt} archive: {exc}", "malformed")
            return Part(fmt, [issue])
        return _EXPANDED

    def _too_deep(self, fmt: str, display: str, depth: int) -> bool:
        if depth < self.limits.max_depth:
            return False
        message = f"{fmt} archive nested more than {self.limits.max_depth} deep was not opened"
        issue = Issue(None, None, None, "suspicious", message, "scan-limit")
        self.report.files.append(FileResult(display, fmt, "suspicious", [issue]))
        return True

    def _oversize(self, display: str, member: str, size: int) -> None:
        if _ext(member) in EXPECTED:
            message = f"member of {size} bytes is larger than the scan limit ({self.limits.max_member_bytes})"
            issue = Issue(None, None, None, "suspicious", message, "scan-limit", member)
            self.report.files.append(FileResult(f"{display}!{member}", "unknown", "suspicious", [issue], size=size))
        else:
            self.report.skipped.append(f"{display}!{member}")

    def _count_limit(self, fmt: str, display: str) -> None:
        message = f"{fmt} archive has more than {self.limits.max_members} members; the rest were not scanned"
        issue = Issue(None, None, None, "suspicious", message, "scan-limit")
        self.report.files.append(FileResult(display, fmt, "suspicious", [issue]))

    def members_zip(self, zf: zipfile.ZipFile, display: str, depth: int) -> None:
        if self._too_deep("zip", display, depth):
            return
        infos = [i for i in zf.infolist() if not i.is_dir()]
        for count, info in enumerate(infos):
            if count >= self.limits.max_members:
                self._count_limit("zip", display)
                break
            with zf.open(info) as member:
                data = member.read(self.limits.max_member_bytes + 1)
            if len(data) > self.limits.max_member_bytes:
                self._oversize(display, info.filename, info.file_size)
                continue
            self.blob(data, f"{display}!{info.filename}", depth + 1)

    def members_tar(self, tf: tarfile.TarFile, display: str, depth: int) -> None:
        if self._too_deep("tar", display, depth):
            return
        for count, info in enumerate(tf):
            if count >= self.limits.max_members:
                self._count_limit("tar", display)
                break
            if not info.isfile():  # links and devices are never followed
                continue
            if info.size > self.limits.max_member_bytes:
                self._oversize(display, info.name, info.size)
                continue
            member = tf.extractfile(info)
            if member is not None:
                self.blob(member.read(self.limits.max_member_bytes + 1), f"{display}!{info.name}", depth + 1)

    def compressed(self, fh: BinaryIO, compression: str, display: str, depth: int) -> Part | None:
        limit = self.limits.max_decompressed_bytes
        errors = (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError)
        try:
            fh.seek(0)
            head = decompressed(fh, compression, limit).read(min(4096, limit))
            if len(head) > 262 and head[257:262] == b"ustar":
                fh.seek(0)
                with tarfile.open(fileobj=decompressed(fh, compression, limit), mode="r|") as tf:
                    self.members_tar(tf, display, depth)
                return _EXPANDED
            fh.seek(0)
            if not (is_pickle(io.BytesIO(head)) or is_pickle(decompressed(fh, compression, limit))):
                return None
            fh.seek(0)
            return scan_pickle(decompressed(fh, compression, limit), compressed=compression)
        except LimitReached as exc:
            message = f"the decompressed {compression} stream is larger than the scan limit ({exc.limit} bytes)"
            return Part(compression, [Issue(None, None, None, "suspicious", message, "scan-limit")])
        except (*errors, tarfile.TarError) as exc:
            issue = Issue(None, None, None, "suspicious", f"broken {compression} stream: {exc}", "malformed")
            return Part(compression, [issue])


def scan_paths(paths: Iterable[str | Path], *, recursive: bool = True, limits: ScanLimits | None = None) -> ScanReport:
    """Scan files, folders (recursively unless ``recursive=False``) and archives of model files.

    Raises
    ------
    ConfigError
        When a path does not exist.
    """
    scan = _Scan(limits or ScanLimits())
    for path in paths:
        scan.path(Path(path), recursive)
    return scan.report


def scan_path(path: str | Path, *, recursive: bool = True, limits: ScanLimits | None = None) -> ScanReport:
    """Scan one file, folder or archive; see :func:`scan_paths`."""
    return scan_paths([path], recursive=recursive, limits=limits)


def describe(issue: Issue) -> str:
    """A short name for an issue: the call or global, the rule and where it is."""
    what = issue.global_name or issue.message.split(":")[0]
    where = f" at offset {issue.offset}" if issue.offset is not None else ""
    inside = f" in {issue.member}" if issue.member else ""
    return f"{what} ({issue.rule}){where}{inside}"


def check_before_load(path: str | Path) -> ScanReport:
    """Scan a model file before loading it and refuse if it is dangerous or fails its pinned hash.

    Raises
    ------
    UntrustedFileError
        When the nearest ``aisec.lock.json`` pins the file to another hash, or when the scan finds
        anything dangerous; the message names the call. This holds even for files the user trusts:
        trust covers code the author meant to ship, not ``os.system``.
    """
    verify_pinned(path)
    report = scan_path(path, recursive=False)
    dangerous = report.issues("dangerous")
    if dangerous:
        first = describe(dangerous[0][1])
        more = f" and {len(dangerous) - 1} more" if len(dangerous) > 1 else ""
        raise UntrustedFileError(
            f"{path}: refused to load: the scan found a dangerous call, {first}{more}; "
            f"run `aisec scan {path}` for details"
        )
    return report
