"""The scanner's test corpus, built at run time (no binary is ever committed).

Malicious payloads are objects whose ``__reduce__`` makes the unpickler call a dangerous global;
every payload that would run a command only ever ``touch``-es a marker file in ``tmp_path``, so a
test can prove that scanning never executes it.
"""

from __future__ import annotations

import io
import os
import pickle
import runpy
import shutil
import socket
import struct
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class Reduce:
    """Pickles as ``func(*args)``: the unpickler calls ``func`` on load."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func = func
        self.args = args

    def __call__(self, *args: Any) -> None:  # pickle insists that the reduce function is callable
        raise AssertionError("never called")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


@dataclass(frozen=True)
class Family:
    """One dangerous family: the rule it must trigger and a payload factory."""

    name: str
    rule: str
    make: Callable[[Path], object]


def _getattr_chain(marker: Path) -> object:
    system = Reduce(getattr, Reduce(__import__, "os"), "system")
    return Reduce(system, f"touch {marker}")


def _runpy(marker: Path) -> object:
    script = marker.parent / "payload_script.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\n")
    return Reduce(runpy.run_path, str(script))


def _rmtree(marker: Path) -> object:
    victim = marker.parent / "victim"
    victim.mkdir(exist_ok=True)
    return Reduce(shutil.rmtree, str(victim))


#: The dangerous families of the issue, one payload each.
FAMILIES: tuple[Family, ...] = (
    Family("os.system", "os-command", lambda m: Reduce(os.system, f"touch {m}")),
    Family("subprocess.Popen", "subprocess", lambda m: Reduce(subprocess.Popen, ["touch", str(m)])),
    Family("builtins.eval", "builtins-exec", lambda m: Reduce(eval, f"__import__('os').system('touch {m}')")),
    Family("builtins.exec", "builtins-exec", lambda m: Reduce(exec, f"import os; os.system('touch {m}')")),
    Family("getattr(__import__('os'), 'system')", "os-command", _getattr_chain),
    Family("runpy.run_path", "runpy", _runpy),
    Family("socket.socket", "network", lambda m: Reduce(socket.socket)),
    Family("shutil.rmtree", "filesystem", _rmtree),
    Family(
        "pickle.loads(nested)",
        "deserialization",
        lambda m: Reduce(pickle.loads, pickle.dumps(Reduce(os.system, f"touch {m}"), protocol=2)),
    ),
)


# -- hand-assembled streams ----------------------------------------------------------------------


def _short_unicode(text: str) -> bytes:
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


def stack_global_memo(command: str) -> bytes:
    """Protocol 4: ``os`` and ``system`` memoized (MEMOIZE), popped, read back by BINGET, STACK_GLOBAL."""
    return (
        b"\x80\x04"
        + _short_unicode("os")
        + b"\x94"  # MEMOIZE -> 0
        + b"0"  # POP
        + _short_unicode("system")
        + b"\x94"  # MEMOIZE -> 1
        + b"0"
        + b"h\x00h\x01"  # BINGET 0, BINGET 1
        + b"\x93"  # STACK_GLOBAL
        + _short_unicode(command)
        + b"\x85R."  # TUPLE1, REDUCE, STOP
    )


def stack_global_long_memo(command: str) -> bytes:
    """Protocol 4: strings put at memo keys 300 and 7 (LONG_BINPUT / BINPUT), read in reverse order."""
    return (
        b"\x80\x04"
        + _short_unicode("system")
        + b"r"
        + struct.pack("<I", 300)  # LONG_BINPUT 300
        + b"0"
        + _short_unicode("posix")
        + b"q\x07"  # BINPUT 7
        + b"0"
        + b"h\x07j"
        + struct.pack("<I", 300)  # BINGET 7, LONG_BINGET 300
        + b"\x93"
        + _short_unicode(command)
        + b"\x85R."
    )


def stack_global_text_memo(command: str) -> bytes:
    """Protocol 0 memo opcodes (PUT / GET with decimal keys) feeding a protocol 4 STACK_GLOBAL."""
    return b"Vos\np5\n0Vsystem\np6\n0g5\ng6\n\x93(V" + command.encode() + b"\ntR."


def stack_global_rot13(command: str) -> bytes:
    """The module name hidden as ``_codecs.encode('bf', 'rot13')`` (an allowlisted global)."""
    return (
        b"\x80\x04"
        + _short_unicode("_codecs")
        + _short_unicode("encode")
        + b"\x93"
        + _short_unicode("bf")
        + _short_unicode("rot13")
        + b"\x86R"  # TUPLE2, REDUCE -> 'os'
        + _short_unicode("system")
        + b"\x93"
        + _short_unicode(command)
        + b"\x85R."
    )


def inst_protocol0(command: str) -> bytes:
    """Protocol 0 INST: ``(S'cmd'`` then ``ios\\nsystem`` builds and calls in one opcode."""
    return b"(S'" + command.encode() + b"'\nios\nsystem\n."


def builtin_py2_name(command: str) -> bytes:
    """Protocol 0 GLOBAL with the Python 2 module name ``__builtin__`` (mapped to builtins on load)."""
    return b"c__builtin__\neval\n(V__import__('os').system('" + command.encode() + b"')\ntR."


def dotted_traversal(command: str) -> bytes:
    """Protocol 4 dotted name: ``logging`` + ``os.system`` reaches os.system through logging's import."""
    return (
        b"\x80\x04"
        + _short_unicode("logging")
        + _short_unicode("os.system")
        + b"\x93"
        + _short_unicode(command)
        + b"\x85R."
    )


def build_tamper() -> bytes:
    """BUILD on an imported module: sets ``json.decoder.evil = 1`` (monkey-patching)."""
    return b"\x80\x02cjson\ndecoder\nN}X\x04\x00\x00\x00evilK\x01s\x86b."


def unresolvable_global() -> bytes:
    """STACK_GLOBAL whose module comes from a call the scanner cannot evaluate."""
    return (
        b"\x80\x04"
        + _short_unicode("textwrap")
        + _short_unicode("dedent")
        + b"\x93"
        + _short_unicode("os")
        + b"\x85R"  # textwrap.dedent('os')
        + _short_unicode("getcwd")
        + b"\x93)R."
    )


def ext_opcode() -> bytes:
    """EXT1: a global from the copyreg extension registry, unknowable from the file."""
    return b"\x80\x02\x82\x05)R."


#: Hand-assembled streams that must be rated dangerous: builder, the global the scanner must name,
#: and the ``module.name`` the real unpickler asks ``find_class`` for.
HANDMADE: dict[str, tuple[Callable[[str], bytes], str, str]] = {
    "stack_global_memo": (stack_global_memo, "os.system", "os.system"),
    "stack_global_long_memo": (stack_global_long_memo, "posix.system", "posix.system"),
    "stack_global_text_memo": (stack_global_text_memo, "os.system", "os.system"),
    "stack_global_rot13": (stack_global_rot13, "os.system", "os.system"),
    "inst_protocol0": (inst_protocol0, "os.system", "os.system"),
    "builtin_py2_name": (builtin_py2_name, "builtins.eval", "__builtin__.eval"),
    "dotted_traversal": (dotted_traversal, "logging.os.system", "logging.os.system"),
}


class RecordingUnpickler(pickle.Unpickler):
    """Resolves every global to a stub that records the call: proves what a stream would run, safely."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def find_class(self, module: str, name: str) -> Any:
        def stub(*args: Any) -> str:
            self.calls.append((f"{module}.{name}", args))
            return {("_codecs", "encode"): "os"}.get((module, name), "stub")

        return stub


def rewrite_zip_member(path: Path, suffix: str, data: bytes) -> str:
    """Replace the member whose name ends with ``suffix`` in a zip file; returns its name."""
    with zipfile.ZipFile(path) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    replaced = ""
    with zipfile.ZipFile(path, "w") as zf:
        for info, content in members:
            if info.filename.endswith(suffix):
                replaced, content = info.filename, data
            zf.writestr(info, content)
    return replaced
