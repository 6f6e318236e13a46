"""``/api/docs/``: a plain HTML reference built from the OpenAPI schema, served by Django.

Swagger UI and Redoc need JavaScript bundles that are not installed (drf-spectacular-sidecar)
and the app must work offline without a CDN, so this page renders the operations, parameters
and answers server-side. The machine-readable schema is at ``/api/schema/``.
"""

from __future__ import annotations

from django.shortcuts import render
from drf_spectacular.generators import SchemaGenerator

METHODS = ("get", "post", "put", "patch", "delete")


def _ref_name(schema: dict | None) -> str:
    if not schema:
        return ""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"list of {_ref_name(schema.get('items'))}"
    return schema.get("type", "object")


def _operations(schema: dict) -> list[dict]:
    operations = []
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            body = (op.get("requestBody") or {}).get("content", {}).get("application/json", {})
            operations.append(
                {
                    "id": op.get("operationId", f"{method}-{path}"),
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "tag": (op.get("tags") or ["api"])[0],
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "type": _ref_name(p.get("schema")),
                            "description": p.get("description", ""),
                        }
                        for p in op.get("parameters", [])
                    ],
                    "request": _ref_name(body.get("schema")),
                    "responses": [
                        {
                            "code": code,
                            "description": answer.get("description", ""),
                            "type": _ref_name(
                                answer.get("content", {}).get("application/json", {}).get("schema")
                            ),
                        }
                        for code, answer in sorted(op.get("responses", {}).items())
                    ],
                }
            )
    return operations


def api_docs(request):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return render(
        request,
        "api/docs.html",
        {"info": schema.get("info", {}), "operations": _operations(schema)},
    )
