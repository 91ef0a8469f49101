"""Which pickle globals are dangerous, which are known-safe constructors, and how a global is rated.

A pickle names the callables it needs as ``module.name`` globals (opcodes ``GLOBAL``,
``STACK_GLOBAL``, ``INST``); the unpickler imports each and calls it with arguments from the
stream, which is how a pickle runs code (Python docs, "pickle: Restricting Globals";
https://docs.python.org/3/library/pickle.html#restricting-globals). The scanner therefore rates
every global:

* **dangerous**: the global belongs to a family in :data:`FAMILIES` (run commands, evaluate
  code, import modules, touch files, open connections, load further pickles, call C...), or the
  name walks through attributes to reach one (``numpy.testing._private.utils.os.system``,
  ``collections.OrderedDict.__init__.__globals__``);
* **safe**: it is on the allowlist (:data:`aisec.scan.allowlist.ALLOWED` and
  :data:`~aisec.scan.allowlist.ALLOWED_PATTERNS`): constructors
  that rebuild tensors, arrays, dtypes, containers and estimator classes and do nothing else;
* **suspicious**: anything else. It may be harmless (a user's own ``nn.Module`` class), but the
  scanner cannot vouch for it, and importing an arbitrary module already runs that module's code.

The allowlist and where it comes from are in :mod:`aisec.scan.allowlist`.
"""

from __future__ import annotations

import _compat_pickle
from collections.abc import Mapping
from dataclasses import dataclass

from aisec.scan.allowlist import is_allowed
from aisec.scan.results import Rating


@dataclass(frozen=True, slots=True)
class Family:
    """A family of dangerous globals.

    Parameters
    ----------
    id:
        Rule identifier, used as the SARIF ``ruleId``.
    title:
        A few words for tables.
    why:
        What loading a pickle that names such a global can do.
    entries:
        ``module -> names``; ``None`` means every name in the module and in its submodules. A
        dotted name (``Path.unlink``) also matches through its last part.
    """

    id: str
    title: str
    why: str
    entries: Mapping[str, frozenset[str] | None]


def _names(*names: str) -> frozenset[str]:
    return frozenset(names)


FAMILIES: tuple[Family, ...] = (
    Family(
        "os-command",
        "OS command / process",
        "the os module (posix and nt are its platform halves) runs shell commands (system, popen), "
        "replaces the process (exec*), spawns or kills processes and deletes or rewrites files",
        {"os": None, "posix": None, "nt": None},
    ),
    Family(
        "subprocess",
        "Subprocess",
        "subprocess, pty and multiprocessing start arbitrary programs",
        {
            "subprocess": None,
            "_posixsubprocess": None,
            "_winapi": None,
            "pty": None,
            "multiprocessing": None,
            "commands": None,
            "popen2": None,
            "asyncio.subprocess": None,
            "asyncio": _names("create_subprocess_shell", "create_subprocess_exec"),
            "platform": _names("popen"),
            "pydoc": _names("pipepager", "tempfilepager", "pager", "getpager"),
            "uuid": _names("_get_command_stdout"),
            "distutils": None,
            "numpy.distutils": None,
        },
    ),
    Family(
        "builtins-exec",
        "Code evaluation / reflection",
        "builtins eval, exec and compile run Python source from the file; __import__, getattr, "
        "setattr, globals and vars reach any module or attribute (getattr(__import__('os'), 'system')); "
        "open reads and writes files; breakpoint and input stop in a debugger",
        {
            "builtins": _names(
                "eval",
                "exec",
                "compile",
                "__import__",
                "getattr",
                "setattr",
                "delattr",
                "open",
                "breakpoint",
                "input",
                "globals",
                "locals",
                "vars",
                "help",
                "exit",
                "quit",
                "__build_class__",
                "__loader__",
                "__spec__",
            ),
            "operator": _names("attrgetter", "methodcaller"),
            "_operator": _names("attrgetter", "methodcaller"),
            "functools": _names("reduce"),
            "_functools": _names("reduce"),
        },
    ),
    Family(
        "runpy",
        "Run module / script",
        "runpy.run_path and run_module execute a script or module as __main__",
        {"runpy": None},
    ),
    Family(
        "code-exec",
        "Code objects / interpreters",
        "code, codeop, types.CodeType/FunctionType, timeit, pdb, profile and numpy's runstring build "
        "or run Python code objects and source strings",
        {
            "code": None,
            "codeop": None,
            "types": _names("CodeType", "FunctionType", "LambdaType", "MethodType", "ModuleType"),
            "timeit": None,
            "pdb": None,
            "bdb": None,
            "cProfile": None,
            "profile": None,
            "trace": None,
            "doctest": None,
            "IPython": None,
            "numpy.testing._private.utils": _names("runstring"),
            "numpy.testing": _names("runstring"),
            "idlelib": None,
            "numpy.f2py": None,
            "torch.utils.cpp_extension": None,
        },
    ),
    Family(
        "importlib",
        "Module import / code download",
        "importlib, imp, pkgutil and zipimport import any module (and so run its code); torch.hub and "
        "pip fetch and run code from the network",
        {
            "importlib": None,
            "imp": None,
            "_imp": None,
            "_frozen_importlib": None,
            "_frozen_importlib_external": None,
            "pkgutil": None,
            "zipimport": None,
            "torch.hub": None,
            "pip": None,
        },
    ),
    Family(
        "sys",
        "Interpreter state",
        "sys gives sys.modules (replace any module), settrace / setprofile hooks, path and exit",
        {"sys": None},
    ),
    Family(
        "filesystem",
        "File system",
        "shutil removes or moves trees (rmtree, move); io.open / pathlib methods write, delete or rename files",
        {
            "shutil": None,
            "io": _names("open", "open_code", "FileIO"),
            "_io": _names("open", "open_code", "FileIO"),
            "codecs": _names("open"),
            "tempfile": None,
            "pathlib": _names(
                "unlink",
                "rmdir",
                "write_text",
                "write_bytes",
                "rename",
                "replace",
                "touch",
                "chmod",
                "mkdir",
                "symlink_to",
                "hardlink_to",
                "open",
                "read_text",
                "read_bytes",
            ),
        },
    ),
    Family(
        "network",
        "Network",
        "socket, ssl, urllib, http.client, requests, httpx, ftplib, smtplib and webbrowser open "
        "connections or URLs: exfiltration, downloads, reverse shells",
        {
            "socket": None,
            "_socket": None,
            "ssl": None,
            "socketserver": None,
            "requests": None,
            "urllib": None,
            "urllib2": None,
            "urllib3": None,
            "http": None,
            "httplib": None,
            "httpx": None,
            "aiohttp": None,
            "ftplib": None,
            "smtplib": None,
            "telnetlib": None,
            "poplib": None,
            "imaplib": None,
            "nntplib": None,
            "xmlrpc": None,
            "xmlrpclib": None,
            "webbrowser": None,
            "paramiko": None,
        },
    ),
    Family(
        "deserialization",
        "Nested deserialization",
        "pickle / marshal / dill / cloudpickle loads, torch.load, numpy.load, joblib.load and yaml.load "
        "deserialize a second payload (often hidden in a bytes constant) with the same powers",
        {
            "pickle": None,
            "_pickle": None,
            "cPickle": None,
            "marshal": None,
            "dill": None,
            "cloudpickle": None,
            "shelve": None,
            "jsonpickle": None,
            "copyreg": _names("add_extension", "remove_extension", "pickle", "constructor"),
            "joblib": _names("load"),
            "joblib.numpy_pickle": _names("load"),
            "torch": _names("load"),
            "torch.serialization": _names("load", "_load", "_legacy_load"),
            "torch.storage": _names("_load_from_bytes"),
            "numpy": _names("load"),
            "numpy.lib.npyio": _names("load"),
            "numpy.lib._npyio_impl": _names("load"),
            "yaml": _names("load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all"),
        },
    ),
    Family(
        "ctypes",
        "Native code",
        "ctypes and cffi call arbitrary C functions and write raw memory",
        {"ctypes": None, "_ctypes": None, "cffi": None},
    ),
)

#: Rules that are not name families (still one SARIF rule each).
EXTRA_RULES: dict[str, tuple[str, Rating, str]] = {
    "attribute-traversal": (
        "Attribute traversal",
        "dangerous",
        "a dotted global name walks through dunder attributes (__globals__, __builtins__, __dict__...) "
        "to reach anything in the interpreter",
    ),
    "module-tamper": (
        "Module / class tampering",
        "dangerous",
        "a BUILD opcode sets attributes on an imported module or class, replacing its functions for "
        "everything that runs later",
    ),
    "unlisted-global": (
        "Global outside the allowlist",
        "suspicious",
        "the pickle imports a global that is not a known-safe constructor; importing and calling it "
        "runs code the scanner cannot vouch for",
    ),
    "unresolved-global": (
        "Global not resolvable statically",
        "suspicious",
        "the module or name of an imported global is computed at load time (or comes from the copyreg "
        "extension registry), so the scanner cannot tell what runs",
    ),
    "malformed": (
        "Malformed or unscanned stream",
        "suspicious",
        "the stream does not parse as the format it claims to be; a loader runs everything up to the fault",
    ),
    "scan-limit": (
        "Scan limit reached",
        "suspicious",
        "the file (or archive member, or decompressed stream) is larger or deeper than the scan limits, "
        "so part of it was not scanned",
    ),
    "extension-mismatch": (
        "Content does not match extension",
        "suspicious",
        "the file's content is another format than its extension says: e.g. a pickle named .safetensors or .npy",
    ),
    "onnx-external-data": (
        "ONNX external data outside the model folder",
        "dangerous",
        "an ONNX tensor stores its data in an external file addressed by an absolute path or a path with "
        "'..', so loading reads files outside the model's folder (path traversal)",
    ),
    "keras-lambda": (
        "Keras Lambda layer",
        "dangerous",
        "a Keras Lambda layer holds serialized Python bytecode that runs when the model is loaded "
        "(Keras 2, or Keras 3 with safe_mode=False)",
    ),
}


# ---------------------------------------------------------------------------------------------
# rating


def normalize(module: str, name: str) -> tuple[str, str]:
    """Map Python 2 names (``__builtin__``, ``copy_reg``...) to the Python 3 ones ``pickle`` imports."""
    mapped = _compat_pickle.NAME_MAPPING.get((module, name))
    if mapped is not None:
        return mapped
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _family_match(module: str, name: str) -> Family | None:
    for family in FAMILIES:
        for fam_module, names in family.entries.items():
            if module != fam_module and not module.startswith(fam_module + "."):
                continue
            if names is None:
                return family
            if module != fam_module:
                continue
            if name in names or name.rsplit(".", 1)[-1] in names or name.split(".", 1)[0] in names:
                return family
    return None


def match_family(module: str, name: str) -> Family | None:
    """The dangerous family that ``module.name`` belongs to, also through dotted attribute paths.

    With protocol 4 and later a name may be dotted and is resolved attribute by attribute, so
    ``numpy`` + ``testing._private.utils.os.system`` reaches ``os.system`` (``utils`` imported
    ``os``): every attribute on the path is checked as a possible module.
    """
    module, name = normalize(module, name)
    family = _family_match(module, name)
    if family is not None:
        return family
    nparts = name.split(".")
    candidates: list[tuple[str, str]] = []
    for i in range(1, len(nparts)):  # torch + hub.load -> torch.hub
        candidates.append((f"{module}." + ".".join(nparts[:i]), ".".join(nparts[i:])))
    for j in range(len(nparts)):  # utils.os.system -> os.system; posixpath + os -> the os module
        for i in range(j + 1, len(nparts) + 1):
            candidates.append((".".join(nparts[j:i]), ".".join(nparts[i:])))
    for cand_module, cand_name in candidates:
        family = _family_match(cand_module, cand_name)
        if family is not None:
            return family
    return None


def _is_dunder(part: str) -> bool:
    return len(part) > 4 and part.startswith("__") and part.endswith("__")


@dataclass(frozen=True, slots=True)
class Verdict:
    """How one global is rated: ``rating``, the ``rule`` id and the reason in words."""

    rating: Rating
    rule: str
    reason: str


def classify(module: str, name: str, *, extra_prefixes: tuple[str, ...] = ()) -> Verdict:
    """Rate the global ``module.name`` (see the module docstring for the policy)."""
    module, name = normalize(module, name)
    family = match_family(module, name)
    if family is not None:
        return Verdict("dangerous", family.id, family.why)
    parts = name.split(".")
    if len(parts) > 1 and any(_is_dunder(p) for p in parts):
        return Verdict("dangerous", "attribute-traversal", EXTRA_RULES["attribute-traversal"][2])
    if is_allowed(f"{module}.{name}", extra_prefixes):
        return Verdict("safe", "allowlist", "known-safe constructor")
    return Verdict("suspicious", "unlisted-global", "not on the allowlist of known-safe constructors")


def classify_dotted(target: str) -> Verdict:
    """Rate a dotted path such as ``os.system`` reached at load time (by getattr, __import__...)."""
    parts = target.split(".")
    if len(parts) < 2:
        family = match_family(target, "")
        if family is not None:
            return Verdict("dangerous", family.id, family.why)
        return Verdict("suspicious", "unlisted-global", "module imported at load time")
    verdicts = [classify(".".join(parts[:i]), ".".join(parts[i:])) for i in range(1, len(parts))]
    for rating in ("dangerous", "safe"):
        for verdict in verdicts:
            if verdict.rating == rating:
                return verdict
    return verdicts[0]


def rule_ids() -> list[str]:
    """Every rule id, dangerous families first."""
    return [f.id for f in FAMILIES] + list(EXTRA_RULES)


def rule_info(rule: str) -> tuple[str, Rating, str]:
    """``(title, default rating, description)`` of a rule id."""
    for family in FAMILIES:
        if family.id == rule:
            return family.title, "dangerous", family.why
    return EXTRA_RULES.get(rule, (rule, "suspicious", rule))
