"""The OpenAPI schema as the app really answers: its own 422 body, and HTML from the pages."""

from typing import Any

from fastapi import FastAPI

VALIDATION_ERROR_SCHEMA: dict[str, Any] = {
    "title": "ValidationErrors",
    "description": "Why the request was refused and, for a form, each invalid field.",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "title": "Detail"},
        "errors": {
            "type": "array",
            "title": "Errors",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {"type": "string", "title": "Field"},
                    "message": {"type": "string", "title": "Message"},
                },
            },
        },
    },
}
JSON_ONLY_PREFIXES = ("/api/", "/health", "/mcp")
HTML = {"schema": {"type": "string"}}


def _pages_answer_html(schema: dict[str, Any]) -> None:
    """A page answers HTML (its form again, with the errors) whatever it declares."""
    for path, operations in schema.get("paths", {}).items():
        if path.startswith(JSON_ONLY_PREFIXES):
            continue
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                response.setdefault("content", {}).setdefault("text/html", HTML)


def document_real_responses(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe the answers the error handlers and pages send."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schemas = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas:
            schemas["HTTPValidationError"] = VALIDATION_ERROR_SCHEMA
        _pages_answer_html(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
