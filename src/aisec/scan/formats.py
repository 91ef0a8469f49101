"""Recognise a model file by its content and scan each format for what runs (or reads) on load.

Formats are told apart by magic bytes, never by the extension (a pickle may be named
``.safetensors``): zip (PyTorch archives, TorchScript, ``.npz``, ``.keras``, or a plain archive),
tar, the compressions joblib writes (zlib, gzip, bz2, lzma, xz), ``.npy`` (``\\x93NUMPY``),
HDF5 (``\\x89HDF\\r\\n\\x1a\\n``, also after a 512/1024/2048-byte user block), safetensors (an
8-byte header length and a JSON header), GGUF, TFLite, pickle (``PROTO``, or a stream that
replays as one), ONNX (a protobuf that starts with ``ir_version``) and JSON.

What each format can do on load, and what is checked:

* pickle / joblib / legacy ``torch.save``: every imported global (:mod:`aisec.scan.pickle_ops`);
* PyTorch zip (``torch.save`` since 1.6) and TorchScript: every ``*.pkl`` member, e.g.
  ``archive/data.pkl``, and any other member that holds a pickle, raw tensor storage
  (``archive/data/0``) aside (TorchScript classes ``__torch__.*`` are resolved by TorchScript);
* ``.npy`` / ``.npz``: the header (``ast.literal_eval``, as NumPy reads it); an object dtype means
  the data is a pickle, which is scanned (``numpy/lib/format.py``);
* ONNX: tensors whose data lives in an external file named by an absolute path or a path with
  ``..`` (parsed with ``onnx`` when installed, else by a protobuf-free byte search);
* Keras (``.keras`` zip ``config.json``, HDF5 ``model_config``, a bare ``config.json``): Lambda
  layers, which carry marshalled Python bytecode.
"""

from __future__ import annotations

import ast
import io
import json
import re
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

from aisec.scan.allowlist import TORCHSCRIPT_PREFIXES
from aisec.scan.pickle_ops import PickleScan, looks_like_pickle, scan_pickle_stream
from aisec.scan.results import Issue
from aisec.scan.rules import rule_info

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
_ONNX_SECOND_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72}
_LAMBDA = re.compile(rb'"class_name"\s*:\s*"Lambda"')
_LAMBDA_NAME = re.compile(rb'"class_name"\s*:\s*"Lambda"\s*,\s*"config"\s*:\s*\{\s*"name"\s*:\s*"([^"]{1,100})"')
_ONNX_LOCATION = re.compile(rb"\x0a\x08location\x12")
_TORCH_STORAGE = re.compile(r"(^|/)data/\d+$")  # raw tensor bytes in a PyTorch archive

#: Formats that are model files (anything else met in a folder is skipped).
MODEL_FORMATS = frozenset(
    {
        "pickle",
        "joblib",
        "pytorch-legacy",
        "pytorch-zip",
        "torchscript",
        "npy",
        "npz",
        "onnx",
        "keras",
        "keras-config",
        "hdf5",
        "safetensors",
        "gguf",
        "tflite",
    }
)


@dataclass
class Part:
    """What a format scanner found: the refined format name, issues and imported globals."""

    format: str
    issues: list[Issue] = field(default_factory=list)
    globals: list[str] = field(default_factory=list)


def sniff(head: bytes) -> str:
    """The format ``head`` (the first few kilobytes) starts like; pickles are checked separately."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if any(head[o : o + 8] == HDF5_MAGIC for o in (0, 512, 1024, 2048)):
        return "hdf5"
    if head.startswith(b"GGUF"):
        return "gguf"
    if head[4:8] == b"TFL3":
        return "tflite"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "tar"
    if _is_safetensors(head):
        return "safetensors"
    if len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] <= 15 and head[2] in _ONNX_SECOND_TAGS:
        return "onnx"
    if head.lstrip()[:1] in (b"{", b"["):
        return "json"
    return "unknown"


def _is_safetensors(head: bytes) -> bool:
    if len(head) < 10:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length < 100_000_000 and head[8:9] == b"{"


def is_pickle(stream: BinaryIO) -> bool:
    """Whether the stream holds a pickle (see :func:`aisec.scan.pickle_ops.looks_like_pickle`)."""
    return looks_like_pickle(stream)


# ---------------------------------------------------------------------------------------------
# pickles


def scan_pickle(stream: BinaryIO, *, member: str | None = None, compressed: str | None = None) -> Part:
    """Scan a raw or joblib pickle stream; the format says which it turned out to be."""
    scan: PickleScan = scan_pickle_stream(stream, member=member)
    fmt = "pytorch-legacy" if scan.torch_legacy else "joblib" if scan.joblib_arrays else "pickle"
    if compressed:
        fmt = f"{'joblib' if fmt == 'pickle' else fmt}+{compressed}"
    return Part(fmt, scan.issues, scan.globals)


# ---------------------------------------------------------------------------------------------
# zip-based formats


def zip_kind(names: list[str]) -> str:
    """Which zip-based format a member list is: torchscript, pytorch-zip, keras, npz or zip."""
    if any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in names) and any("code/" in n for n in names):
        return "torchscript"
    if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        return "pytorch-zip"
    if "config.json" in names and ("metadata.json" in names or any(n.endswith(".weights.h5") for n in names)):
        return "keras"
    if names and all(n.endswith(".npy") for n in names if not n.endswith("/")):
        return "npz"
    return "zip"


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes | None:
    with zf.open(info) as fh:
        data = fh.read(limit + 1)
    return None if len(data) > limit else data


def scan_model_zip(zf: zipfile.ZipFile, kind: str, *, member_limit: int) -> Part:
    """Scan a PyTorch / TorchScript archive, an ``.npz`` or a ``.keras`` zip."""
    part = Part(kind)
    found: set[str] = set()
    prefixes = TORCHSCRIPT_PREFIXES if kind == "torchscript" else ()
    for info in zf.infolist():
        name = info.filename
        if info.is_dir():
            continue
        torch_kind = kind in ("pytorch-zip", "torchscript")
        wanted = (
            (torch_kind and not _TORCH_STORAGE.search(name))  # every member but raw tensor storage
            or (kind == "npz" and name.endswith(".npy"))
            or (kind == "keras" and name == "config.json")
        )
        if not wanted:
            continue
        data = _read_member(zf, info, member_limit)
        if data is None:
            part.issues.append(_limit_issue(f"member larger than {member_limit} bytes was not scanned", name))
            continue
        if torch_kind and not name.endswith(".pkl") and not looks_like_pickle(io.BytesIO(data)):
            continue  # version, byteorder, TorchScript code...: no pickle, nothing to unpickle
        if kind == "npz":
            sub = scan_npy(io.BytesIO(data), member=name)
        elif kind == "keras":
            sub = Part(kind, keras_lambda_issues(data, member=name))
        else:
            scan = scan_pickle_stream(io.BytesIO(data), member=name, extra_prefixes=prefixes)
            sub = Part(kind, scan.issues, scan.globals)
        part.issues.extend(sub.issues)
        found.update(sub.globals)
    part.globals = sorted(found)
    return part


# ---------------------------------------------------------------------------------------------
# numpy


def _has_object(descr: Any) -> bool:
    if isinstance(descr, str):
        return descr.lstrip("<>|=").startswith("O")
    if isinstance(descr, list | tuple):
        return any(_has_object(item) for item in descr)
    return False


def scan_npy(stream: BinaryIO, *, member: str | None = None) -> Part:
    """Parse a ``.npy`` header; an object dtype means a pickle follows, which is scanned."""
    part = Part("npy")
    magic = stream.read(8)
    if len(magic) < 8 or not magic.startswith(NPY_MAGIC):
        part.issues.append(_malformed("not a .npy file (bad magic)", member))
        return part
    major = magic[6]
    size_field = stream.read(2 if major == 1 else 4)
    if len(size_field) not in (2, 4):
        part.issues.append(_malformed("truncated .npy header", member))
        return part
    (hlen,) = struct.unpack("<H" if len(size_field) == 2 else "<I", size_field)
    if hlen > 1 << 20:
        part.issues.append(_malformed(f".npy header of {hlen} bytes", member))
        return part
    try:
        header = ast.literal_eval(stream.read(hlen).decode("latin-1"))
        descr = header["descr"]
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError) as exc:
        part.issues.append(_malformed(f"unreadable .npy header ({type(exc).__name__})", member))
        return part
    if _has_object(descr):
        scan = scan_pickle_stream(stream, member=member)
        part.issues.extend(scan.issues)
        part.globals = scan.globals
    return part


# ---------------------------------------------------------------------------------------------
# keras


def _walk_json(value: Any) -> Iterator[dict[str, Any]]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def keras_lambda_issues(data: bytes, *, member: str | None = None) -> list[Issue]:
    """One dangerous issue per Keras ``Lambda`` layer in a JSON model config."""
    try:
        config = json.loads(data)
    except (ValueError, RecursionError):
        return lambda_in_bytes(data, 0, member)
    _title, rating, why = rule_info("keras-lambda")
    issues: list[Issue] = []
    for node in _walk_json(config):
        if node.get("class_name") == "Lambda":
            inner = node.get("config")
            name = inner.get("name", "?") if isinstance(inner, dict) else "?"
            issues.append(
                Issue(None, None, None, rating, f"Keras Lambda layer {name!r}: {why}", "keras-lambda", member)
            )
    return issues


def lambda_in_bytes(data: bytes, base: int, member: str | None) -> list[Issue]:
    """Lambda layers found by a byte search (a config stored inside a binary file)."""
    _title, rating, why = rule_info("keras-lambda")
    issues = []
    for match in _LAMBDA.finditer(data):
        named = _LAMBDA_NAME.match(data, match.start())
        name = named.group(1).decode("utf-8", "replace") if named else "?"
        offset = base + match.start()
        message = f"Keras Lambda layer {name!r} in the model config at byte offset {offset}: {why}"
        issues.append(Issue(offset, None, None, rating, message, "keras-lambda", member))
    return issues


def looks_like_keras_config(data: bytes) -> bool:
    """Whether a JSON file is a Keras model config (``class_name`` + ``config`` at the top)."""
    try:
        config = json.loads(data)
    except (ValueError, RecursionError):
        return bool(_LAMBDA.search(data))
    return isinstance(config, dict) and "class_name" in config and "config" in config


def scan_hdf5(stream: BinaryIO, *, member: str | None = None, chunk: int = 1 << 20) -> Part:
    """Search an HDF5 file's bytes for a Keras ``model_config`` with Lambda layers (no h5py)."""
    part = Part("hdf5")
    overlap = 256  # a match cut by a chunk border is found in the next window
    tail = b""
    base = 0
    seen: set[int | None] = set()
    while block := stream.read(chunk):
        window = tail + block
        for issue in lambda_in_bytes(window, base - len(tail), member):
            if issue.offset not in seen:
                seen.add(issue.offset)
                part.issues.append(issue)
        tail = window[-overlap:]
        base += len(block)
    return part


# ---------------------------------------------------------------------------------------------
# onnx


def _escapes(location: str, folder: Path | None) -> bool:
    parts = re.split(r"[\\/]", location)
    if ".." in parts or location.startswith(("/", "\\")):
        return True
    if PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute():
        return True
    if PureWindowsPath(location).drive:
        return True
    if folder is not None:  # a symlink inside the folder may still point outside it
        try:
            resolved = (folder / location).resolve()
            return not resolved.is_relative_to(folder.resolve())
        except (OSError, ValueError):
            return True
    return False


def _onnx_tensors(model: Any) -> Iterator[Any]:
    graphs = [model.graph]
    graphs.extend(g for ti in model.training_info for g in (ti.initialization, ti.algorithm))
    nodes = [n for f in model.functions for n in f.node]
    while graphs or nodes:
        if graphs:
            graph = graphs.pop()
            yield from graph.initializer
            for sparse in graph.sparse_initializer:
                yield sparse.values
                yield sparse.indices
            nodes.extend(graph.node)
            continue
        node = nodes.pop()
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices
            if attr.HasField("g"):
                graphs.append(attr.g)
            graphs.extend(attr.graphs)


def onnx_locations(data: bytes) -> tuple[list[tuple[str, str]], bool]:
    """``[(tensor name, external location)]`` of an ONNX model and whether it parsed as ONNX.

    Uses ``onnx`` (a protobuf parse, which runs nothing) when installed, else searches the bytes
    for the serialized ``StringStringEntryProto {key: "location", value: ...}``.
    """
    try:
        import onnx
    except ImportError:
        return onnx_locations_heuristic(data), True
    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # protobuf raises DecodeError and friends
        return [], False
    found = []
    for tensor in _onnx_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            entries = {e.key: e.value for e in tensor.external_data}
            found.append((tensor.name, entries.get("location", "")))
    return found, True


def onnx_locations_heuristic(data: bytes) -> list[tuple[str, str]]:
    """External-data locations found by a byte search (no ``onnx`` needed)."""
    found = []
    for match in _ONNX_LOCATION.finditer(data):
        pos = match.end()
        length, shift = 0, 0
        while pos < len(data) and shift < 35:  # protobuf varint
            byte = data[pos]
            length |= (byte & 0x7F) << shift
            pos += 1
            shift += 7
            if not byte & 0x80:
                break
        value = data[pos : pos + length].decode("utf-8", "replace")
        found.append(("?", value))
    return found


def scan_onnx(data: bytes, *, folder: Path | None, member: str | None = None) -> Part:
    """Flag tensors whose external data lies outside the model's folder."""
    part = Part("onnx")
    locations, parsed = onnx_locations(data)
    if not parsed:
        part.issues.append(_malformed("does not parse as an ONNX model", member))
        return part
    _title, rating, why = rule_info("onnx-external-data")
    for tensor, location in locations:
        if _escapes(location, folder):
            message = f"tensor {tensor!r} reads its data from {location!r}, outside the model's folder: {why}"
            part.issues.append(Issue(None, None, None, rating, message, "onnx-external-data", member))
    return part


# ---------------------------------------------------------------------------------------------
# helpers


def _malformed(message: str, member: str | None) -> Issue:
    return Issue(None, None, None, "suspicious", message, "malformed", member)


def _limit_issue(message: str, member: str | None) -> Issue:
    return Issue(None, None, None, "suspicious", message, "scan-limit", member)
