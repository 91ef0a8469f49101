"""The pickle walker: every dangerous family at every protocol, hand-made and obfuscated streams."""

from __future__ import annotations

import os
import pickle
import pickletools
from pathlib import Path

import pytest

from aisec.scan.pickle_ops import scan_pickle_stream
from aisec.scan.rules import classify
from tests.scan.corpus import (
    FAMILIES,
    HANDMADE,
    RecordingUnpickler,
    Reduce,
    build_tamper,
    ext_opcode,
    unresolvable_global,
)

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_every_family_is_dangerous_at_every_protocol(family, protocol, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    data = pickle.dumps(family.make(marker), protocol=protocol)
    scan = scan_pickle_stream(data)
    assert scan.rating == "dangerous", [i.message for i in scan.issues]
    assert family.rule in {i.rule for i in scan.issues if i.rating == "dangerous"}
    assert scan.complete and scan.pickles == 1
    assert not marker.exists()


def test_issue_reports_offset_and_call(tmp_path: Path) -> None:
    data = pickle.dumps(Reduce(os.system, "touch /nonexistent/x"), protocol=2)
    issue = next(i for i in scan_pickle_stream(data).issues if i.rule == "os-command")
    ops = {pos: op.name for op, _arg, pos in pickletools.genops(data)}
    assert ops[issue.offset] == issue.opcode == "GLOBAL"
    assert issue.global_name == f"{os.system.__module__}.system"
    assert "('touch /nonexistent/x')" in issue.message and "REDUCE at offset" in issue.message


def test_getattr_chain_resolves_to_the_attribute(tmp_path: Path) -> None:
    chain = next(f for f in FAMILIES if f.name.startswith("getattr"))
    scan = scan_pickle_stream(pickle.dumps(chain.make(tmp_path / "M"), protocol=4))
    reached = {i.global_name for i in scan.issues}
    assert {"builtins.getattr", "builtins.__import__", "os.system"} <= reached
    gadget = next(i for i in scan.issues if i.global_name == "os.system")
    assert "called as" in gadget.message  # the result of getattr(...) is called


@pytest.mark.parametrize("name", sorted(HANDMADE))
def test_hand_assembled_streams(name: str) -> None:
    build, expected, imported = HANDMADE[name]
    data = build("touch MARKER")
    recorder = RecordingUnpickler(data)  # what the real unpickler would call, with stubs: nothing runs
    recorder.load()
    assert (imported, ("touch MARKER",)) in recorder.calls or imported == "__builtin__.eval"
    assert imported in {call[0] for call in recorder.calls}
    scan = scan_pickle_stream(data)
    assert scan.rating == "dangerous", [i.message for i in scan.issues]
    assert expected in {i.global_name for i in scan.issues if i.rating == "dangerous"}


def test_stack_global_memo_offset_points_at_stack_global() -> None:
    data = HANDMADE["stack_global_memo"][0]("touch MARKER")
    issue = next(i for i in scan_pickle_stream(data).issues if i.global_name == "os.system")
    assert issue.opcode == "STACK_GLOBAL" and data[issue.offset] == 0x93


def test_build_on_a_module_is_tampering() -> None:
    scan = scan_pickle_stream(build_tamper())
    assert scan.rating == "dangerous"
    assert "module-tamper" in {i.rule for i in scan.issues}


def test_unresolvable_and_extension_globals_are_suspicious() -> None:
    for data in (unresolvable_global(), ext_opcode()):
        scan = scan_pickle_stream(data)
        assert scan.rating == "suspicious", [i.message for i in scan.issues]
        assert "unresolved-global" in {i.rule for i in scan.issues}
        assert "?" in scan.globals


def test_truncated_payload_still_dangerous() -> None:
    data = pickle.dumps(Reduce(os.system, "touch MARKER"), protocol=4)[:-1]  # no STOP
    scan = scan_pickle_stream(data)
    assert scan.rating == "dangerous" and not scan.complete
    assert "malformed" in {i.rule for i in scan.issues}


def test_trailing_random_data_raises_no_alarm() -> None:
    benign = pickle.dumps({"w": [1.0, 2.0]}, protocol=2)
    rng = __import__("random").Random(0)
    for _ in range(50):
        junk = b"\x80\x02" + bytes(rng.randrange(256) for _ in range(256))
        scan = scan_pickle_stream(benign + junk)
        assert scan.rating == "safe", [i.message for i in scan.issues]


def test_second_pickle_in_stream_is_scanned() -> None:
    data = pickle.dumps(1, protocol=2) + pickle.dumps(Reduce(os.system, "touch MARKER"), protocol=2)
    scan = scan_pickle_stream(data)
    assert scan.pickles == 2 and scan.rating == "dangerous"


def test_benign_pickles_are_safe(text_pipeline) -> None:
    import collections

    import numpy as np

    values = [collections.OrderedDict(a=1), {1, 2}, frozenset({3}), slice(1, 2), 1 + 2j, b"x", np.arange(3)]
    for protocol in PROTOCOLS:
        for value in [*values, text_pipeline]:
            scan = scan_pickle_stream(pickle.dumps(value, protocol=protocol))
            assert scan.rating == "safe", (protocol, value, [i.message for i in scan.issues])


@pytest.mark.parametrize(
    ("module", "name", "rating"),
    [
        ("posix", "system", "dangerous"),
        ("nt", "system", "dangerous"),
        ("__builtin__", "eval", "dangerous"),
        ("numpy", "testing._private.utils.os.system", "dangerous"),
        ("collections", "OrderedDict.__init__.__globals__", "dangerous"),
        ("torch", "load", "dangerous"),
        ("webbrowser", "open", "dangerous"),
        ("ctypes", "CDLL", "dangerous"),
        ("sys", "modules", "dangerous"),
        ("importlib", "import_module", "dangerous"),
        ("marshal", "loads", "dangerous"),
        ("code", "InteractiveInterpreter", "dangerous"),
        ("torch._utils", "_rebuild_tensor_v2", "safe"),
        ("torch", "FloatStorage", "safe"),
        ("numpy.core.multiarray", "_reconstruct", "safe"),
        ("numpy._core.multiarray", "_reconstruct", "safe"),
        ("sklearn.linear_model._logistic", "LogisticRegression", "safe"),
        ("scipy.sparse._csr", "csr_matrix", "safe"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper", "safe"),
        ("copy_reg", "_reconstructor", "safe"),
        ("sklearn.utils._testing", "assert_run_python_script_without_output", "suspicious"),
        ("__main__", "Net", "suspicious"),
        ("numpy.core", "_ufunc_reconstruct", "suspicious"),
    ],
)
def test_classify(module: str, name: str, rating: str) -> None:
    assert classify(module, name).rating == rating
