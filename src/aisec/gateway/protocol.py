"""Wire formats: the Open Inference Protocol (KServe v2) and a plain JSON ``/predict``.

v2 request: ``{"id"?, "inputs": [{"name", "shape", "datatype", "data"}]}``; the answer carries
``outputs`` named ``probabilities`` (FP32, ``[n, classes]``), ``label`` (INT64, ``[n]``) and, for a
top-k policy, ``top_k_classes``/``top_k_scores``. ``/predict`` takes ``{"inputs": [...]}`` (rows
of numbers or strings) and answers ``{"labels", "probabilities"?, "top_k"?}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InferInput(_Wire):
    name: str = Field(max_length=256)
    shape: list[int] = Field(max_length=8)
    datatype: str = Field(max_length=16)
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferRequest(_Wire):
    id: str | None = Field(None, max_length=256)
    inputs: list[InferInput] = Field(min_length=1, max_length=1)
    outputs: list[dict[str, Any]] | None = None
    parameters: dict[str, Any] | None = None


class PredictRequest(_Wire):
    inputs: list[Any] = Field(description="Rows of numbers (tabular/image) or strings (text).")


class ErrorBody(_Wire):
    error: str
    rule: str | None = None


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A JSON Schema with its ``$defs`` inlined, fit for an OpenAPI ``requestBody``."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.split("/")[-1]])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring a JSON body of ``model`` (parsed by hand in the route)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline_schema(model)}}}}


def v2_outputs(answer: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The v2 ``outputs`` list of a hardened answer (see :func:`aisec.gateway.policy.harden`)."""
    outputs: list[dict[str, Any]] = []
    if "probabilities" in answer:
        probs = answer["probabilities"]
        width = len(probs[0]) if probs else 0
        flat = [v for row in probs for v in row]
        outputs.append({"name": "probabilities", "shape": [n, width], "datatype": "FP32", "data": flat})
    if "top_k" in answer:
        k = len(answer["top_k"]["classes"][0]) if n else 0
        outputs.append(
            {
                "name": "top_k_classes",
                "shape": [n, k],
                "datatype": "INT64",
                "data": [c for row in answer["top_k"]["classes"] for c in row],
            }
        )
        outputs.append(
            {
                "name": "top_k_scores",
                "shape": [n, k],
                "datatype": "FP32",
                "data": [s for row in answer["top_k"]["scores"] for s in row],
            }
        )
    outputs.append({"name": "label", "shape": [n], "datatype": "INT64", "data": answer["labels"]})
    return outputs


__all__ = ["ErrorBody", "InferInput", "InferRequest", "PredictRequest", "inline_schema", "request_body", "v2_outputs"]
