"""Walk a pickle opcode stream without executing it: which globals it imports, what it calls.

The walker reads opcodes with :func:`pickletools.genops`, which decodes and never executes, and
replays them on a small *symbolic* stack: constants stay constants, an imported global becomes a
:class:`SymGlobal`, a call (``REDUCE``, ``NEWOBJ``, ``INST``, ``OBJ``) a :class:`SymCall`. The
memo (``PUT``/``BINPUT``/``LONG_BINPUT``/``MEMOIZE``, read back by ``GET``/``BINGET``/
``LONG_BINGET``) is replayed too, so ``STACK_GLOBAL`` resolves its module and name even when the
strings come from the memo; a module or name computed at load time cannot be resolved and is
itself suspicious. Calls through ``getattr`` / ``__import__`` / ``operator.attrgetter``... are
followed to the attribute they reach (``getattr(__import__('os'), 'system')`` is ``os.system``).

A file may hold more than one pickle: legacy ``torch.save`` writes five in a row, and joblib
writes each NumPy array's bytes raw right after the ``BUILD`` of its ``NumpyArrayWrapper``
(``joblib/numpy_pickle.py``: a padding-length byte and padding when
``numpy_array_alignment_bytes`` is set, then ``prod(shape) * itemsize`` bytes, or, for object
arrays, a nested protocol-5 pickle). The walker skips those bytes exactly as joblib reads them,
scans nested pickles, and afterwards reads further pickles only while the stream starts with a
``PROTO`` opcode; a trailing stream that fails to parse counts only if it imports something
dangerous (random data never spells ``os.system``), so raw data raises no false alarm.

References: Python docs, ``pickle`` ("Restricting Globals") and ``pickletools``; PEP 307
(protocol 2), PEP 3154 (protocol 4), PEP 574 (protocol 5).
"""

from __future__ import annotations

import io
import pickletools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from aisec.scan.results import Issue, Rating, worst
from aisec.scan.rules import classify, classify_dotted, normalize
from aisec.scan.streams import LimitReached
from aisec.scan.symbolic import OPAQUE, SymCall, SymGlobal, SymSet, fold, joblib_layout, reached, render

_MAX_ITEMS = 4096  # container elements kept on the symbolic stack (enough for any call argument)
_MAX_NESTED = 2  # pickles inside bytes constants, scanned this deep
_PROTO_HEAD = re.compile(rb"\x80[\x00-\x05]")  # PROTO 0-5: the unpickler accepts them all
_PROTO_COMMON = re.compile(rb"\x80[\x02-\x05]")  # what picklers write (PROTO is emitted from 2 on)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_NUMPY_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _Malformed(Exception):
    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


@dataclass
class _Record:
    """A mutable issue under construction (imports are merged per global)."""

    offset: int | None
    opcode: str | None
    global_name: str | None
    rating: Rating
    rule: str
    message: str
    reason: str = ""
    count: int = 1
    calls: list[str] = field(default_factory=list)

    def issue(self, member: str | None) -> Issue:
        message = self.message
        if self.count > 1:
            message += f" ({self.count} times)"
        if self.calls:
            message += "; called as " + "; ".join(self.calls[:3])
        if self.reason:
            message += f". Why it matters: {self.reason}"
        return Issue(self.offset, self.opcode, self.global_name, self.rating, message, self.rule, member)


class _Collector:
    """Collects imports and issues of one stream (nested pickles get their own collector)."""

    def __init__(self, extra_prefixes: tuple[str, ...], depth: int) -> None:
        self.extra_prefixes = extra_prefixes
        self.depth = depth
        self.records: list[_Record] = []
        self.by_global: dict[str, int] = {}
        self.globals: set[str] = set()
        self.joblib_arrays = 0

    def add(self, record: _Record) -> int:
        self.records.append(record)
        return len(self.records) - 1

    def import_global(self, g: SymGlobal) -> None:
        if g.module is None or g.name is None:
            self.globals.add("?")
            self.add(
                _Record(
                    g.offset,
                    g.opcode,
                    "?",
                    "suspicious",
                    "unresolved-global",
                    f"{g.opcode} at offset {g.offset} imports a global whose module or name is computed at "
                    "load time (or looked up in the copyreg extension registry); it cannot be resolved statically",
                )
            )
            return
        module, name = normalize(g.module, g.name)
        qualname = f"{module}.{name}"
        self.globals.add(qualname)
        verdict = classify(module, name, extra_prefixes=self.extra_prefixes)
        if verdict.rating == "safe":
            return
        if qualname in self.by_global:
            self.records[self.by_global[qualname]].count += 1
            return
        message = f"{g.opcode} at offset {g.offset} imports {qualname}"
        record = _Record(g.offset, g.opcode, qualname, verdict.rating, verdict.rule, message, verdict.reason)
        self.by_global[qualname] = self.add(record)

    def note_call(self, call: SymCall) -> None:
        func = call.func
        if isinstance(func, SymGlobal) and func.module is not None and func.name is not None:
            qualname = "{}.{}".format(*normalize(func.module, func.name))
            index = self.by_global.get(qualname)
            if index is not None and len(self.records[index].calls) < 3:
                self.records[index].calls.append(f"{render(call)} by {call.opcode} at offset {call.offset}")
        target = reached(call)  # only import / attribute gadgets have one
        if target is not None:
            verdict = classify_dotted(target)
            if verdict.rating == "dangerous":
                call.gadget = self.add(
                    _Record(
                        call.offset,
                        call.opcode,
                        target,
                        "dangerous",
                        verdict.rule,
                        f"{render(call)} at offset {call.offset} reaches {target} at load time",
                        verdict.reason,
                    )
                )
        if isinstance(func, SymCall) and func.gadget is not None and len(self.records[func.gadget].calls) < 3:
            self.records[func.gadget].calls.append(f"{render(call)} by {call.opcode} at offset {call.offset}")

    def issues(self, member: str | None) -> list[Issue]:
        return [r.issue(member) for r in self.records]


class _Machine:
    """Replays one pickle (up to its ``STOP``) on a symbolic stack."""

    def __init__(self, stream: BinaryIO, collector: _Collector, level: int = 0) -> None:
        self.stream = stream
        self.c = collector
        self.level = level  # joblib object arrays nest pickles in the stream
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[Any, Any] = {}
        self.protocol: int | None = None
        self.first_value: Any = None

    # -- stack helpers (an underflow aborts the real unpickler too) --------------------------
    def pop(self, pos: int) -> Any:
        if not self.stack:
            raise _Malformed(pos, "stack underflow")
        return self.stack.pop()

    def pop_mark(self, pos: int) -> list[Any]:
        if not self.metastack:
            raise _Malformed(pos, "MARK expected")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def top(self, pos: int) -> Any:
        if not self.stack:
            raise _Malformed(pos, "stack underflow")
        return self.stack[-1]

    def run(self, max_ops: int | None = None) -> int:
        """Walk to ``STOP`` (or ``max_ops`` opcodes); returns the offset reached.

        Raises :class:`_Malformed` where the stream breaks, :class:`LimitReached` past the budget.
        """
        ops: Iterator[tuple[Any, Any, int | None]] = pickletools.genops(self.stream)
        pos = self.stream.tell()
        count = 0
        while max_ops is None or count < max_ops:
            count += 1
            try:
                op, arg, p = next(ops)
            except StopIteration:
                raise _Malformed(pos, "stream ended without STOP") from None
            except LimitReached:
                raise
            except Exception as exc:  # genops raises ValueError, struct.error, UnicodeDecodeError...
                raise _Malformed(self.stream.tell(), f"{type(exc).__name__}: {exc}") from None
            pos = p if p is not None else pos
            if op.name == "STOP":
                self.pop(pos)
                return self.stream.tell()
            self.step(op.name, arg, pos)
        return self.stream.tell()

    def push(self, value: Any) -> None:
        self.stack.append(value)

    def step(self, name: str, arg: Any, pos: int) -> None:
        push = self.push
        if name == "PROTO":
            self.protocol = arg
        elif name == "FRAME":
            pass
        elif name in _CONSTANTS:
            push(arg)
            if isinstance(arg, bytes | bytearray) and _PROTO_HEAD.match(bytes(arg[:2])):
                self.nested(bytes(arg), pos)
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            push({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        elif name == "EMPTY_LIST":
            push([])
        elif name == "EMPTY_DICT":
            push({})
        elif name == "EMPTY_TUPLE":
            push(())
        elif name == "EMPTY_SET":
            push(SymSet())
        elif name == "MARK":
            self.metastack.append(self.stack)
            self.stack = []
        elif name == "LIST":
            push(self.pop_mark(pos)[:_MAX_ITEMS])
        elif name == "TUPLE":
            push(tuple(self.pop_mark(pos)[:_MAX_ITEMS]))
        elif name == "FROZENSET":
            push(SymSet(self.pop_mark(pos)[:_MAX_ITEMS]))
        elif name == "DICT":
            items = self.pop_mark(pos)
            d: dict[Any, Any] = {}
            self._setitems(d, items)
            push(d)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = [self.pop(pos) for _ in range(n)]
            push(tuple(reversed(items)))
        elif name == "APPEND":
            value = self.pop(pos)
            self._extend(self.top(pos), [value])
        elif name in ("APPENDS", "ADDITEMS"):
            items = self.pop_mark(pos)
            self._extend(self.top(pos), items)
        elif name == "SETITEM":
            value, key = self.pop(pos), self.pop(pos)
            target = self.top(pos)
            if isinstance(target, dict):
                self._setitems(target, [key, value])
        elif name == "SETITEMS":
            items = self.pop_mark(pos)
            target = self.top(pos)
            if isinstance(target, dict):
                self._setitems(target, items)
        elif name == "POP":
            if self.stack:
                self.stack.pop()
            else:
                self.pop_mark(pos)
        elif name == "POP_MARK":
            self.pop_mark(pos)
        elif name == "DUP":
            push(self.top(pos))
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise _Malformed(pos, f"memo key {arg} not found")
            push(self.memo[arg])
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[arg] = self.top(pos)
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.top(pos)
        elif name in ("GLOBAL", "INST"):
            module, _, gname = str(arg).partition(" ")
            g = SymGlobal(module, gname, pos, name)
            self.c.import_global(g)
            if name == "GLOBAL":
                push(g)
            else:
                self._call(g, tuple(self.pop_mark(pos)), pos, name)
        elif name == "STACK_GLOBAL":
            gname, module = self.pop(pos), self.pop(pos)
            ok = isinstance(module, str) and isinstance(gname, str)
            g = SymGlobal(module if ok else None, gname if ok else None, pos, name)
            self.c.import_global(g)
            push(g)
        elif name in ("EXT1", "EXT2", "EXT4"):
            g = SymGlobal(None, None, pos, name)  # resolved by the copyreg extension registry at load time
            self.c.import_global(g)
            push(g)
        elif name == "REDUCE":
            args, func = self.pop(pos), self.pop(pos)
            self._call(func, args, pos, name)
        elif name == "NEWOBJ":
            args, cls = self.pop(pos), self.pop(pos)
            self._call(cls, args, pos, name)
        elif name == "NEWOBJ_EX":
            kwargs, args, cls = self.pop(pos), self.pop(pos), self.pop(pos)
            self._call(cls, args if not kwargs else (*_as_tuple(args), kwargs), pos, name)
        elif name == "OBJ":
            items = self.pop_mark(pos)
            if not items:
                raise _Malformed(pos, "OBJ without a class")
            self._call(items[0], tuple(items[1:]), pos, name)
        elif name == "BUILD":
            state = self.pop(pos)
            self.build(self.top(pos), state, pos)
        elif name == "PERSID":
            push(SymCall("persistent_load", (arg,), pos, name))
        elif name == "BINPERSID":
            push(SymCall("persistent_load", (self.pop(pos),), pos, name))
        elif name == "NEXT_BUFFER":
            push(OPAQUE)
        elif name == "READONLY_BUFFER":
            self.top(pos)
        else:  # an opcode this walker does not know is not a pickle it can vouch for
            raise _Malformed(pos, f"unsupported opcode {name}")
        if self.first_value is None and self.stack:
            self.first_value = self.stack[0]

    def _call(self, func: Any, args: Any, pos: int, opcode: str) -> None:
        call = SymCall(func, args, pos, opcode)
        self.c.note_call(call)
        self.stack.append(fold(call))

    def build(self, obj: Any, state: Any, pos: int) -> None:
        if isinstance(obj, SymGlobal):
            self.c.add(
                _Record(
                    pos,
                    "BUILD",
                    obj.qualname,
                    "dangerous",
                    "module-tamper",
                    f"BUILD sets attributes {render(state)} on the imported {obj.qualname} itself "
                    "(monkey-patching a module or class)",
                )
            )
            return
        if isinstance(obj, SymCall):
            obj.state = state
            if isinstance(obj.func, SymGlobal) and obj.func.qualname == _NUMPY_WRAPPER:
                self.skip_joblib_array(state, pos)

    def skip_joblib_array(self, state: Any, pos: int) -> None:
        """Skip (or scan) the array data joblib writes right after a ``NumpyArrayWrapper``."""
        layout = joblib_layout(state)
        if layout is None:
            raise _Malformed(pos, "joblib NumpyArrayWrapper with an array layout the scanner cannot read")
        nbytes, has_object, aligned = layout
        self.c.joblib_arrays += 1
        if has_object:  # joblib pickles object arrays as a nested protocol-5 pickle
            if self.level >= 16:
                raise _Malformed(pos, "joblib object arrays nested more than 16 deep")
            _Machine(self.stream, self.c, self.level + 1).run()
            return
        if aligned:
            pad = self.stream.read(1)
            if len(pad) != 1:
                raise _Malformed(pos, "joblib array data truncated")
            nbytes += pad[0]
        _skip(self.stream, nbytes, pos)

    def nested(self, data: bytes, pos: int) -> None:
        """Scan a pickle hidden in a bytes constant (as ``pickle.loads(b'...')`` would load it)."""
        if self.c.depth >= _MAX_NESTED:
            return
        sub = _Collector(self.c.extra_prefixes, self.c.depth + 1)
        try:
            _Machine(io.BytesIO(data), sub).run()
            complete = True
        except _Malformed:
            complete = False
        for record in sub.records:
            if complete or record.rating == "dangerous":
                record.message = f"in a pickle inside the bytes constant at offset {pos} (its offset {record.offset}): {record.message}"
                record.offset = pos
                self.c.add(record)
        self.c.globals.update(sub.globals if complete else ())

    @staticmethod
    def _extend(target: Any, items: list[Any]) -> None:
        if isinstance(target, list) and len(target) < _MAX_ITEMS:
            target.extend(items[: _MAX_ITEMS - len(target)])

    @staticmethod
    def _setitems(target: dict[Any, Any], items: list[Any]) -> None:
        for i in range(0, len(items) - 1, 2):
            if len(target) >= _MAX_ITEMS:
                return
            try:
                target[items[i]] = items[i + 1]
            except TypeError:  # an unhashable symbolic key: the real unpickler may differ; skip
                continue


_CONSTANTS = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "STRING", "BINSTRING",
    "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "UNICODE",
    "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "FLOAT", "BINFLOAT",
}  # fmt: skip


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


def _skip(stream: BinaryIO, nbytes: int, pos: int) -> None:
    """Move forward ``nbytes`` (reading the last one, so a stream that is too short is caught)."""
    if nbytes <= 0:
        return
    start = stream.tell()
    stream.seek(start + nbytes - 1)
    if len(stream.read(1)) != 1:
        raise _Malformed(pos, f"joblib array data ({nbytes} bytes) runs past the end of the stream")


@dataclass
class PickleScan:
    """What :func:`scan_pickle_stream` found in one stream."""

    issues: list[Issue]
    globals: list[str]
    pickles: int
    protocol: int | None
    end: int
    joblib_arrays: int = 0
    torch_legacy: bool = False
    complete: bool = True

    @property
    def rating(self) -> Rating:
        return worst(i.rating for i in self.issues)


def scan_pickle_stream(
    stream: BinaryIO | bytes,
    *,
    member: str | None = None,
    extra_prefixes: tuple[str, ...] = (),
    max_pickles: int = 64,
) -> PickleScan:
    """Scan every pickle in a stream (read from its current position) without executing any.

    Parameters
    ----------
    stream:
        A readable, seekable binary stream, or bytes.
    member:
        Archive member name to put on the issues.
    extra_prefixes:
        Global prefixes to treat as safe here (``__torch__.`` inside a TorchScript archive).
    max_pickles:
        How many consecutive pickles to read at most.
    """
    if isinstance(stream, bytes | bytearray):
        stream = io.BytesIO(bytes(stream))
    collector = _Collector(extra_prefixes, 0)
    start = stream.tell()
    pickles, protocol, complete, torch_legacy = 0, None, True, False
    end = start
    while pickles < max_pickles:
        head = stream.read(2)
        stream.seek(end)
        if pickles and not _PROTO_HEAD.match(head):
            break  # raw data after the pickles (legacy torch storages) or the end
        sub = _Collector(extra_prefixes, 0) if pickles else collector
        machine = _Machine(stream, sub)
        try:
            end = machine.run()
        except LimitReached as exc:
            complete = False
            if sub is not collector:
                collector.records.extend(r for r in sub.records if r.rating == "dangerous" and _looks_real(r))
            collector.add(
                _Record(
                    stream.tell(),
                    None,
                    None,
                    "suspicious",
                    "scan-limit",
                    f"stopped scanning at offset {stream.tell()}: the stream is longer than the scan limit "
                    f"({exc.limit} bytes); the rest was not scanned",
                )
            )
            break
        except _Malformed as exc:
            if pickles == 0:
                complete = False
                collector.add(
                    _Record(
                        exc.offset,
                        None,
                        None,
                        "suspicious",
                        "malformed",
                        f"the pickle stream is malformed at offset {exc.offset} ({exc.reason}); "
                        "a loader runs every opcode before that point",
                    )
                )
            else:  # trailing bytes that merely start like a pickle: keep only real threats
                collector.records.extend(r for r in sub.records if r.rating == "dangerous" and _looks_real(r))
            break
        if pickles:
            collector.records.extend(sub.records)
            collector.globals.update(sub.globals)
            collector.joblib_arrays += sub.joblib_arrays
        elif machine.first_value == _TORCH_LEGACY_MAGIC:
            torch_legacy = True
        protocol = protocol if protocol is not None else machine.protocol
        pickles += 1
    return PickleScan(
        issues=collector.issues(member),
        globals=sorted(collector.globals),
        pickles=pickles,
        protocol=protocol,
        end=end,
        joblib_arrays=collector.joblib_arrays,
        torch_legacy=torch_legacy,
        complete=complete,
    )


def _looks_real(record: _Record) -> bool:
    return record.global_name is not None and bool(_IDENT.match(record.global_name))


def looks_like_pickle(stream: BinaryIO) -> bool:
    """Whether ``stream`` (at its start; the position is restored) holds a pickle.

    Protocol 2+ pickles start with ``PROTO``. ``PROTO`` is optional, though, so any stream whose
    first byte is an opcode is replayed (at most 256 opcodes) on the symbolic machine, which
    also checks the stack: text that happens to start with opcode letters fails fast.
    """
    start = stream.tell()
    try:
        head = stream.read(2)
        if _PROTO_COMMON.match(head):
            return True
        if not head or chr(head[0]) not in _OPCODE_CHARS:
            return False
        stream.seek(start)
        try:
            _Machine(stream, _Collector((), _MAX_NESTED)).run(max_ops=256)
        except (_Malformed, LimitReached):
            return False
        return True
    finally:
        stream.seek(start)


_OPCODE_CHARS = {op.code for op in pickletools.opcodes}
