"""The symbolic values the pickle walker keeps on its stack, and what can be read from them.

Nothing here executes a pickle: a global stays a name (:class:`SymGlobal`), a call stays a record
of callee and arguments (:class:`SymCall`). From those the walker can still tell which attribute
an import gadget reaches (:func:`reached`), fold the few pure string functions used to hide names
(:func:`fold`), and read the array layout joblib stores in a ``NumpyArrayWrapper``
(:func:`joblib_layout`).
"""

from __future__ import annotations

import codecs
import math
import re
from dataclasses import dataclass
from typing import Any

from aisec.scan.rules import normalize

_RENDER = 160  # characters of a rendered call in a message
_IMPORT_GADGETS = {"builtins.__import__", "importlib.import_module", "importlib.__import__"}
_PAIR_GADGETS = {"numpy.core._ufunc_reconstruct", "numpy._core._ufunc_reconstruct"}


class _Opaque:
    """A value the walker does not track (a persistent id, a buffer...)."""

    def __repr__(self) -> str:
        return "…"


OPAQUE = _Opaque()


@dataclass(eq=False)
class SymGlobal:
    """An imported global; ``module``/``name`` are ``None`` when not resolvable statically."""

    module: str | None
    name: str | None
    offset: int
    opcode: str

    @property
    def qualname(self) -> str:
        if self.module is None or self.name is None:
            return "?"
        return "{}.{}".format(*normalize(self.module, self.name))


@dataclass(eq=False)
class SymCall:
    """The result of calling ``func`` with ``args`` (``state`` is set by a later ``BUILD``)."""

    func: Any
    args: Any
    offset: int
    opcode: str
    state: Any = None
    gadget: int | None = None  # index of the issue record that follows this call to its target


class SymSet(list):
    """A set or frozenset on the symbolic stack (a list: its symbols may be unhashable)."""


def render(value: Any, depth: int = 0) -> str:
    """A short, repr-like rendering of a symbolic value, for messages."""
    if depth > 4:
        return "…"
    if isinstance(value, SymGlobal):
        return value.qualname
    if isinstance(value, SymCall):
        args = value.args
        inner = ", ".join(render(a, depth + 1) for a in args) if isinstance(args, tuple) else render(args, depth + 1)
        func = value.func if isinstance(value.func, str) else render(value.func, depth + 1)
        text = f"{func}({inner})"
    elif isinstance(value, tuple):
        text = "(" + ", ".join(render(v, depth + 1) for v in value[:8]) + ("," if len(value) == 1 else "") + ")"
    elif isinstance(value, list):
        text = "[" + ", ".join(render(v, depth + 1) for v in value[:8]) + (", …" if len(value) > 8 else "") + "]"
    elif isinstance(value, dict):
        items = list(value.items())[:6]
        text = "{" + ", ".join(f"{render(k, depth + 1)}: {render(v, depth + 1)}" for k, v in items) + "}"
    elif isinstance(value, str | bytes | bytearray):
        text = repr(value if len(value) <= 80 else value[:80])
    else:
        text = repr(value)
    return text if len(text) <= _RENDER else text[: _RENDER - 1] + "…"


def reached(value: Any, depth: int = 0) -> str | None:
    """The dotted path a value stands for, when it was reached by import / attribute gadgets."""
    if depth > 32:  # a chain of getattr calls this long is followed no further
        return None
    if isinstance(value, SymGlobal):
        return None if value.module is None else value.qualname
    if not isinstance(value, SymCall):
        return None
    args = value.args if isinstance(value.args, tuple) else ()
    func = value.func
    if isinstance(func, SymGlobal):
        name = normalize(func.module or "", func.name or "")
        fname = f"{name[0]}.{name[1]}"
        if fname == "builtins.getattr" and len(args) >= 2 and isinstance(args[1], str):
            base = reached(args[0], depth + 1)
            return f"{base}.{args[1]}" if base else None
        if fname in _IMPORT_GADGETS and args and isinstance(args[0], str):
            return args[0]
        if fname == "pkgutil.resolve_name" and args and isinstance(args[0], str):
            return args[0].replace(":", ".")
        if fname in _PAIR_GADGETS and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
            return f"{args[0]}.{args[1]}"
        return None
    # operator.attrgetter('a.b')(obj)
    if isinstance(func, SymCall) and isinstance(func.func, SymGlobal) and func.func.qualname == "operator.attrgetter":
        fargs = func.args if isinstance(func.args, tuple) else ()
        if fargs and isinstance(fargs[0], str) and args:
            base = reached(args[0], depth + 1)
            return f"{base}.{fargs[0]}" if base else None
    return None


_ROT13 = {"rot13", "rot_13", "rot-13"}
_CODECS = {"_codecs.encode", "_codecs.decode", "codecs.encode", "codecs.decode"}


def fold(call: SymCall) -> Any:
    """Evaluate the few pure string functions a pickle may use to hide a name (rot13, ``str``).

    ``STACK_GLOBAL(_codecs.encode('bf', 'rot13'), 'system')`` is ``os.system``; folding the
    constant keeps such a name resolvable. Nothing else is ever evaluated.
    """
    func, args = call.func, call.args
    if not isinstance(func, SymGlobal) or not isinstance(args, tuple):
        return call
    name = func.qualname
    strings = all(isinstance(a, str) for a in args)
    if name in _CODECS and len(args) == 2 and strings and args[1].lower() in _ROT13:
        return codecs.encode(args[0], "rot13")
    if name == "builtins.str" and len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return call


_DTYPE_STR = re.compile(r"^[<>|=]?([a-zA-Z])(\d*)$")
_KIND_SIZES = {"b": 1, "?": 1, "O": 8, "e": 2, "f": 4, "d": 8, "g": 16, "F": 8, "D": 16, "G": 32}


def joblib_layout(state: Any) -> tuple[int, bool, bool] | None:
    """``(nbytes, has_object, aligned)`` of the array a ``NumpyArrayWrapper`` state describes.

    The dtype is pickled as ``numpy.dtype(code, False, True)`` with a ``BUILD`` state tuple
    ``(version, byteorder, subarray, names, fields, elsize, alignment, flags)``; flag bit 0
    (``NPY_ITEM_REFCOUNT``) marks dtypes that hold Python objects.
    """
    if not isinstance(state, dict):
        return None
    shape, dtype = state.get("shape"), state.get("dtype")
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        return None
    if not isinstance(dtype, SymCall) or not isinstance(dtype.args, tuple) or not dtype.args:
        return None
    code = dtype.args[0]
    match = _DTYPE_STR.match(code) if isinstance(code, str) else None
    if match is None:
        return None
    kind, digits = match.group(1), match.group(2)
    dstate = dtype.state if isinstance(dtype.state, tuple) else ()
    flags = dstate[-1] if dstate and isinstance(dstate[-1], int) else 0
    elsize = dstate[5] if len(dstate) >= 8 and isinstance(dstate[5], int) else -1
    has_object = kind == "O" or bool(flags & 1)
    if elsize > 0:
        itemsize = elsize
    elif digits:
        itemsize = int(digits) * (4 if kind == "U" else 1)
    elif kind in _KIND_SIZES:
        itemsize = _KIND_SIZES[kind]
    else:
        return None
    count = math.prod(shape)
    aligned = state.get("numpy_array_alignment_bytes") is not None
    return count * itemsize, has_object, aligned
