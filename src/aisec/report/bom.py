"""ML-BOM: a CycloneDX (1.6) bill of materials of a model, its data and its Python dependencies.

``aisec bom RUN_DIR`` (or ``aisec bom SPEC``) describes the model under test as a
``machine-learning-model`` component with a model card (task, inputs, outputs, the data sets it
was trained and tested on, and, from a run folder, the metrics the attacks measured), the data
sets as ``data`` components with content hashes, and the installed Python packages aisec runs on,
with versions and package URLs. The document is built with ``cyclonedx-python-lib``; that library
does not model ``modelCard`` and ``data`` yet, so those two fields (CycloneDX 1.5+) are added to
its JSON output, and the result is validated against the CycloneDX JSON schema.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aisec.core.config import Spec, load_spec, parse_spec
from aisec.core.findings import Finding
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError, MissingDependencyError

log = logging.getLogger(__name__)

SPEC_VERSION = "1.6"
_FRAMEWORK = {"torch": "torch", "sklearn": "scikit-learn", "onnx": "onnxruntime"}


def _require_cyclonedx() -> None:
    try:
        import cyclonedx  # noqa: F401
    except ImportError:
        raise MissingDependencyError("cyclonedx-python-lib", "bom") from None


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _features_bytes(x: Any) -> bytes:
    if isinstance(x, torch.Tensor):
        return np.ascontiguousarray(x.detach().cpu().numpy().astype("<f4")).tobytes()
    if isinstance(x, np.ndarray):
        return np.ascontiguousarray(x.astype("<f4")).tobytes()
    return "\x1e".join(str(s) for s in x).encode("utf-8")  # text: one record separator between messages


def dataset_sha256(data: Dataset) -> str:
    """SHA-256 of a data set's content as loaded: train then test features (float32 little-endian,
    or UTF-8 text) and labels (int64 little-endian), so the same split hashes the same anywhere."""
    h = hashlib.sha256()
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        h.update(_features_bytes(x))
        h.update(np.ascontiguousarray(torch.as_tensor(y).cpu().numpy().astype("<i8")).tobytes())
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class BomSource:
    """What a BOM describes: the spec, and from a run folder its metadata and findings."""

    spec: Spec
    run: dict[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    origin: str = ""


def read_source(path: str | Path) -> BomSource:
    """A run folder (``spec.json`` + ``run.json``) or a spec file (YAML)."""
    path = Path(path)
    if path.is_dir():
        spec_file, run_file = path / "spec.json", path / "run.json"
        if not spec_file.is_file() or not run_file.is_file():
            raise ConfigError(f"{path} is not a run folder (no spec.json / run.json): run 'aisec assess' first")
        from aisec.assess.runner import read_findings

        spec = parse_spec(json.loads(spec_file.read_text(encoding="utf-8")), source=str(spec_file))
        run = json.loads(run_file.read_text(encoding="utf-8"))
        return BomSource(spec, run, tuple(read_findings(path)), str(path))
    if path.is_file():
        return BomSource(load_spec(path), origin=str(path))
    raise ConfigError(f"{path}: neither a run folder nor a spec file")


def _dist_versions() -> dict[str, md.Distribution]:
    from packaging.utils import canonicalize_name

    out: dict[str, md.Distribution] = {}
    for dist in md.distributions():
        name = dist.metadata.get("Name")
        if name:
            out.setdefault(canonicalize_name(name), dist)
    return out


def python_dependencies(root: str = "aisec") -> dict[str, tuple[str, str, list[str]]]:
    """Installed runtime dependencies of ``root``, transitively: name -> (name, version, requirements).

    Extras are not followed; an environment marker is evaluated for this interpreter.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    dists = _dist_versions()
    seen: dict[str, tuple[str, str, list[str]]] = {}
    todo = [canonicalize_name(root)]
    while todo:
        name = todo.pop()
        if name in seen or name not in dists:
            continue
        dist = dists[name]
        needs: list[str] = []
        for line in dist.requires or []:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            dep = canonicalize_name(req.name)
            if dep in dists and dep not in needs:
                needs.append(dep)
                todo.append(dep)
        seen[name] = (dist.metadata["Name"], dist.version, sorted(needs))
    return seen


def _metrics(findings: Iterable[Finding]) -> list[dict[str, str]]:
    """Performance metrics of the model card: clean accuracy once, then each finding's headline."""
    out: list[dict[str, str]] = []
    clean = [
        f.metrics["clean_accuracy"]
        for f in findings
        if f.status == "ok" and isinstance(f.metrics.get("clean_accuracy"), int | float)
    ]
    if clean:
        out.append({"type": "clean_accuracy", "value": f"{float(clean[0]):.4g}", "slice": "test split"})
    for f in findings:
        value = f.metrics.get(f.headline) if f.headline else None
        if f.status != "ok" or not isinstance(value, int | float):
            continue
        params = ", ".join(f"{k}={v}" for k, v in sorted(f.config.items()) if isinstance(v, int | float | str))
        out.append(
            {
                "type": f"{f.attack}: {f.headline}",
                "value": f"{float(value):.4g}",
                "slice": f"{f.job_id} ({params})" if params else f.job_id,
            }
        )
    return out


def _considerations(source: BomSource) -> dict[str, Any]:
    limits = []
    if source.findings:
        from aisec.assess.scoring import score_findings

        needs = source.run.get("threat_model", {}).get("needs", {})
        card = score_findings(list(source.findings), needs)
        for s in card.goals:
            if s.need is None:
                continue
            score = f", score {s.score:.0f}/100" if s.score is not None else ""
            limits.append(f"{s.goal.value}: {s.verdict} against a {s.need.value} protection need{score} (aisec)")
        limits += sorted({flag for f in source.findings for flag in f.flags})
    return {"technicalLimitations": limits} if limits else {}


def build_bom(source: str | Path | BomSource) -> dict[str, Any]:
    """The ML-BOM of a run folder or spec, as a CycloneDX 1.6 JSON document (a dict)."""
    _require_cyclonedx()
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    src = source if isinstance(source, BomSource) else read_source(source)
    spec = src.spec
    from aisec.assess.runner import load_data

    data = load_data(spec)
    target = src.run.get("target", {})
    model_name = str(target.get("name") or (Path(spec.target.path).stem if spec.target.path else spec.name))

    model_hashes = []
    model_props = [Property(name="aisec:target.kind", value=spec.target.kind)]
    if spec.target.path:
        model_path = Path(spec.target.path)
        model_props.append(Property(name="aisec:target.path", value=str(model_path)))
        if model_path.is_file():
            model_hashes.append(HashType(alg=HashAlgorithm.SHA_256, content=sha256_file(model_path)))
        else:
            model_props.append(Property(name="aisec:hash", value="unavailable: the model file is not at this path"))
    if spec.target.url:
        model_props.append(Property(name="aisec:target.url", value=spec.target.url))
    model = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=model_name,
        bom_ref=f"model:{model_name}",
        description=f"model under test of the aisec assessment {spec.name!r}",
        hashes=model_hashes,
        properties=model_props,
    )

    described = data.describe()
    data_hashes = [HashType(alg=HashAlgorithm.SHA_256, content=dataset_sha256(data))]
    data_props = [
        Property(name="aisec:data.kind", value=spec.data.kind),
        Property(name="aisec:data.split", value=f"test_size={spec.data.test_size}, seed={spec.data.seed}"),
        Property(name="aisec:data.n_train", value=str(described["n_train"])),
        Property(name="aisec:data.n_test", value=str(described["n_test"])),
        Property(
            name="aisec:data.hash",
            value="SHA-256 of the loaded train and test splits (see aisec.report.bom.dataset_sha256)",
        ),
    ]
    if spec.data.path and Path(spec.data.path).is_file():
        data_props.append(Property(name="aisec:data.file_sha256", value=sha256_file(Path(spec.data.path))))
        data_props.append(Property(name="aisec:data.path", value=str(spec.data.path)))
    dataset = Component(
        type=ComponentType.DATA,
        name=data.name,
        bom_ref=f"data:{data.name}",
        description=f"{data.modality.value} data set, {len(data.class_names)} classes",
        hashes=data_hashes,
        properties=data_props,
    )

    bom = Bom()
    bom.metadata.component = model
    bom.components.add(dataset)
    libs: dict[str, Any] = {}
    deps = python_dependencies("aisec")
    for key, (name, version, _) in sorted(deps.items()):
        libs[key] = Component(
            type=ComponentType.LIBRARY,
            name=name,
            version=version,
            bom_ref=f"pypi:{key}@{version}",
            purl=PackageURL(type="pypi", name=key, version=version),
        )
        bom.components.add(libs[key])
    for key, (_, _, needs) in deps.items():
        bom.register_dependency(libs[key], [libs[n] for n in needs if n in libs])
    framework = _FRAMEWORK.get(spec.target.kind)
    runtime = [libs[framework]] if framework in libs else []
    bom.register_dependency(model, [dataset, *runtime])
    bom.register_dependency(dataset, [])
    if "aisec" in deps:
        bom.metadata.tools.components.add(
            Component(type=ComponentType.APPLICATION, name="aisec", version=deps["aisec"][1])
        )
    doc = json.loads(JsonV1Dot6(bom).output_as_string())
    doc["metadata"]["component"]["modelCard"] = _model_card(src, data, target, dataset.bom_ref.value or "")
    for comp in doc.get("components", []):
        if comp.get("bom-ref") == dataset.bom_ref.value:
            comp["data"] = [
                {
                    "type": "dataset",
                    "name": data.name,
                    "classification": "public"
                    if spec.data.kind in ("digits", "breast_cancer", "sms_spam")
                    else "unknown",
                    "description": f"{described['n_train']} training and {described['n_test']} test records",
                }
            ]
    return doc


def _model_card(src: BomSource, data: Dataset, target: dict[str, Any], data_ref: str) -> dict[str, Any]:
    shape = target.get("input_shape") or (list(data.input_shape) if data.input_shape else None)
    if data.modality.value == "text":
        in_format = "text (one string per input)"
    else:
        in_format = f"float32 tensor of shape {tuple(shape) if shape else '?'} per input ({data.modality.value})"
    n_classes = target.get("n_classes") or data.n_classes
    card: dict[str, Any] = {
        "modelParameters": {
            "task": "classification",
            "approach": {"type": "supervised"},
            "datasets": [{"ref": data_ref}],
            "inputs": [{"format": in_format}],
            "outputs": [
                {
                    "format": f"{src.spec.target.outputs} over {n_classes} classes: {', '.join(map(str, data.class_names))}"
                }
            ],
        },
    }
    metrics = _metrics(src.findings)
    if metrics:
        card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    considerations = _considerations(src)
    if considerations:
        card["considerations"] = considerations
    return card


def validate_bom(doc: dict[str, Any] | str) -> list[str]:
    """Errors of a CycloneDX 1.6 JSON document against the schema (empty when valid)."""
    _require_cyclonedx()
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = doc if isinstance(doc, str) else json.dumps(doc)
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text, all_errors=True)
    return [str(e) for e in errors] if errors else []


def write_bom(source: str | Path, out: str | Path | None = None, *, validate: bool = True) -> Path:
    """Write the ML-BOM of a run folder (default ``RUN_DIR/bom.json``) or a spec (default ``bom.json``)."""
    path = Path(source)
    target = Path(out) if out is not None else (path / "bom.json" if path.is_dir() else Path("bom.json"))
    doc = build_bom(path)
    if validate:
        try:
            errors = validate_bom(doc)
        except ImportError as exc:  # the schema validator needs jsonschema
            log.info("ML-BOM not validated: %s", exc)
            errors = []
        if errors:
            raise ConfigError(f"the ML-BOM does not validate against CycloneDX {SPEC_VERSION}: {errors[0]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return target
