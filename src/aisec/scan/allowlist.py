"""The allowlist of pickle globals that only rebuild data: tensors, arrays, dtypes, containers, estimators.

A global on this list is rated **safe** by :func:`aisec.scan.rules.classify` unless it also belongs to a
dangerous family or walks through dunder attributes. The list follows the globals that PyTorch's
``weights_only`` unpickler accepts (``torch/_weights_only_unpickler.py``), the globals NumPy, joblib and
scikit-learn write for arrays and estimators, and the Python 2 names that ``pickle`` maps with
``fix_imports`` (``_compat_pickle``).
"""

from __future__ import annotations

import re


def _words(text: str) -> list[str]:
    return text.split()


_NUMPY_SCALARS = _words(
    "bool_ bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 intc intp uintp longlong ulonglong "
    "float16 float32 float64 longdouble half single double complex64 complex128 clongdouble str_ "
    "bytes_ void object_ datetime64 timedelta64 generic number"
)

# Element-wise math ufuncs (e.g. FunctionTransformer(func=np.log1p)): pure functions of arrays.
_NUMPY_UFUNCS = _words(
    "abs absolute negative positive sign exp exp2 expm1 log log2 log10 log1p sqrt cbrt square "
    "reciprocal sin cos tan arcsin arccos arctan arctan2 sinh cosh tanh arcsinh arccosh arctanh "
    "floor ceil trunc rint round clip add subtract multiply divide true_divide floor_divide power "
    "maximum minimum fmax fmin hypot logaddexp logaddexp2 isnan isinf isfinite deg2rad rad2deg"
)

_TORCH_DTYPES = _words(
    "float16 float32 float64 bfloat16 half float double complex32 complex64 complex128 cfloat cdouble "
    "uint8 uint16 uint32 uint64 int8 int16 int32 int64 short int long bool qint8 quint8 qint32 "
    "quint4x2 quint2x4 float8_e4m3fn float8_e5m2 float8_e4m3fnuz float8_e5m2fnuz "
    "uint1 uint2 uint3 uint4 uint5 uint6 uint7 int1 int2 int3 int4 int5 int6 int7 "
    "per_tensor_affine per_tensor_symmetric per_channel_affine per_channel_symmetric "
    "per_channel_affine_float_qparams strided sparse_coo sparse_csr sparse_csc sparse_bsr sparse_bsc "
    "contiguous_format channels_last channels_last_3d preserve_format"
)

_TORCH_STORAGES = _words(
    "Float Double Half BFloat16 Long Int Short Char Byte Bool ComplexFloat ComplexDouble "
    "QInt8 QUInt8 QInt32 QUInt4x2 QUInt2x4"
)

_TORCH_REBUILD = _words(
    "_rebuild_tensor _rebuild_tensor_v2 _rebuild_tensor_v3 _rebuild_parameter "
    "_rebuild_parameter_with_state _rebuild_qtensor _rebuild_sparse_tensor _rebuild_nested_tensor "
    "_rebuild_meta_tensor_no_storage _rebuild_wrapper_subclass _rebuild_device_tensor_from_numpy "
    "_rebuild_device_tensor_from_cpu_tensor"
)

#: Exact ``module.name`` globals that only rebuild data: tensors, arrays, dtypes, containers.
ALLOWED: frozenset[str] = frozenset(
    [
        # containers and plain values
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.Counter",
        "collections.deque",
        "builtins.set",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.complex",
        "builtins.bytearray",
        "builtins.bytes",
        "builtins.range",
        "builtins.object",
        "builtins.list",
        "builtins.dict",
        "builtins.tuple",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "builtins.str",
        "builtins.Ellipsis",
        "builtins.NotImplemented",
        "copyreg._reconstructor",
        "copyreg.__newobj__",
        "copyreg.__newobj_ex__",
        "_codecs.encode",
        "datetime.datetime",
        "datetime.date",
        "datetime.time",
        "datetime.timedelta",
        "datetime.timezone",
        "decimal.Decimal",
        "fractions.Fraction",
        "uuid.UUID",
        "re._compile",
        "pathlib.Path",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "pathlib.PurePath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        # torch
        "torch.Size",
        "torch.device",
        "torch.Tensor",
        "torch.nn.parameter.Parameter",
        "torch.nn.parameter.Buffer",
        "torch.serialization._get_layout",
        "torch._tensor._rebuild_from_type_v2",
        "torch.storage.UntypedStorage",
        "torch.storage.TypedStorage",
        "torch.UntypedStorage",
        "torch.TypedStorage",
        "torch.jit._pickle.build_intlist",
        "torch.jit._pickle.build_doublelist",
        "torch.jit._pickle.build_boollist",
        "torch.jit._pickle.build_tensorlist",
        "torch.jit._pickle.build_tensor_from_id",
        "torch.jit._pickle.restore_type_tag",
        *(f"torch.{t}" for t in _TORCH_DTYPES),
        *(f"torch.{s}Storage" for s in _TORCH_STORAGES),
        *(f"torch._utils.{f}" for f in _TORCH_REBUILD),
        # numpy (numpy 1 names numpy.core, numpy 2 numpy._core)
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.matrix",
        "numpy.memmap",
        "numpy.core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy.core.numeric._frombuffer",
        "numpy._core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar",
        "numpy._core.numeric._frombuffer",
        "numpy.ma.core._mareconstruct",
        "numpy.ma.core.MaskedArray",
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._pickle.__generator_ctor",
        "numpy.random.__RandomState_ctor",
        "numpy.random.mtrand.RandomState",
        "numpy.random._generator.Generator",
        "numpy.random._mt19937.MT19937",
        "numpy.random._pcg64.PCG64",
        "numpy.random._pcg64.PCG64DXSM",
        "numpy.random._philox.Philox",
        "numpy.random._sfc64.SFC64",
        "numpy.random.bit_generator.SeedSequence",
        "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
        *(f"numpy.{s}" for s in _NUMPY_SCALARS),
        *(f"numpy.{u}" for u in _NUMPY_UFUNCS),
        # joblib: the placeholder for arrays stored raw after it
        "joblib.numpy_pickle.NumpyArrayWrapper",
    ]
)

_SPARSE = r"(csr|csc|coo|bsr|dia|dok|lil)_(matrix|array)"

#: Pattern rules: whole families of constructors, each documented here.
ALLOWED_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^torch(\.cuda)?\.[A-Z][A-Za-z0-9]*Tensor$"), "torch tensor type (torch.FloatTensor...)"),
    (re.compile(r"^numpy\.dtypes\.[A-Za-z0-9]+DType$"), "numpy 2 dtype class"),
    # Cython's pickle helper in scikit-learn's trees and metrics: newObj(cls) is cls.__new__(cls).
    (re.compile(r"^sklearn(\.[a-z_][a-z0-9_]*)+\.newObj$"), "scikit-learn Cython newObj"),
    (
        re.compile(rf"^scipy\.sparse(\._?(csr|csc|coo|bsr|dia|dok|lil)|\._arrays|\._matrix)?\.{_SPARSE}$"),
        "scipy sparse",
    ),
    # Standard torch layers: a class (CapWords, PEP 8) in torch.nn.modules; their __setstate__ only
    # restores attributes.
    (re.compile(r"^torch\.nn\.modules(\.[a-z_][a-z0-9_]*)+\.[A-Z][A-Za-z0-9]*$"), "torch.nn layer class"),
    # scikit-learn estimator classes: CapWords names (PEP 8 class names, also private helpers
    # like _BinMapper) in public or private sklearn modules, but not test helpers or data fetchers.
    (
        re.compile(
            r"^sklearn(?!\.(utils\._testing|utils\.estimator_checks|datasets|externals|_build_utils)\b)"
            r"(\.[A-Za-z_][A-Za-z0-9_]*)+\._?[A-Z][A-Za-z0-9_]*$"
        ),
        "scikit-learn class",
    ),
)

#: Extra prefixes that are safe inside a TorchScript archive: classes TorchScript resolves in
#: its own compilation unit (``__torch__.*``), never by a Python import.
TORCHSCRIPT_PREFIXES: tuple[str, ...] = ("__torch__.",)


def is_allowed(qualname: str, extra_prefixes: tuple[str, ...] = ()) -> bool:
    """Whether ``module.name`` is on the allowlist (exact name, pattern, or an extra prefix)."""
    if qualname in ALLOWED:
        return True
    if any(qualname.startswith(p) for p in extra_prefixes):
        return True
    return any(pattern.match(qualname) for pattern, _ in ALLOWED_PATTERNS)
