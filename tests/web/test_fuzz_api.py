"""Fuzzing of the OpenAPI schema the app serves to staff (schemathesis, in-process): no 5xx and,
where the schema declares a response, a response that conforms to it, as an admin and as a
secretary (logged in, CSRF header set).

Left out: the secretary assistant (``/api/secretariat/*``: streaming, a language model), audio
uploads (``/api/speech/transcriptions``, ``/p/{token}/voix``: a speech model per example), and
``/login`` / ``/logout`` (they would end the session being fuzzed)."""

import json
import os
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)
from sqlmodel import Session

from tests.support.preconsultation import book, send

# Examples per operation and role (positive and negative data mixed); more with the variable,
# and ACCUEIL_FUZZ_RANDOM=1 for a new draw each run instead of a reproducible one.
EXAMPLES = int(os.environ.get("ACCUEIL_FUZZ_EXAMPLES", "12"))
EXCLUDED_PREFIXES = ("/api/secretariat/", "/api/speech/")
EXCLUDED = {("POST", "/login"), ("POST", "/logout"), ("POST", "/p/{token}/voix")}
CHECKS = [response_schema_conformance, content_type_conformance]


def _file_part(part: Any) -> Any:
    """One multipart part with text or bytes content, as httpx wants it."""
    if isinstance(part, tuple):
        filename, content, *rest = part
        if not isinstance(content, bytes | str):
            content = json.dumps(content)
        return (filename, content, *rest)
    return part if isinstance(part, bytes | str) else json.dumps(part)


def _httpx_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """schemathesis' requests-style arguments, for the app's own test client (httpx)."""
    out = {k: v for k, v in kwargs.items() if k in ("method", "url", "params", "json")}
    if kwargs.get("files"):
        out["files"] = [(name, _file_part(part)) for name, part in kwargs["files"]]
    out["headers"] = {k: v for k, v in (kwargs.get("headers") or {}).items() if v is not None}
    data = kwargs.get("data")
    if isinstance(data, bytes | str):
        out["content"] = data
    elif data is not None:
        out["data"] = data
    return out


def _fuzz(client: TestClient, operation: Any, failures: list[str], role: str) -> None:
    csrf = client.headers["x-csrf-token"]
    strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
        GenerationMode.NEGATIVE
    )

    @given(case=strategy)
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=os.environ.get("ACCUEIL_FUZZ_RANDOM") != "1",
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        kwargs = _httpx_kwargs(case.as_transport_kwargs(base_url="http://testserver"))
        kwargs["headers"]["x-csrf-token"] = csrf
        try:
            response = client.request(**kwargs, follow_redirects=False)
        except Exception as exc:  # an exception escaping the app is a 500
            failures.append(f"{role} {operation.label}: {type(exc).__name__}: {exc} {kwargs}")
            return
        if response.status_code >= 500:
            failures.append(
                f"{role} {operation.label}: {response.status_code} {kwargs} {response.text[:300]}"
            )
            return
        response.request.read()  # a multipart body is streamed; the checks read it again
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:
            found = [line.strip() for line in str(exc).splitlines() if line.startswith("- ")]
            failures.append(
                f"{role} {operation.label}: {response.status_code} "
                f"{response.headers.get('content-type')} {found or str(exc)[:200]}"
            )

    run()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_fuzzing_the_openapi_schema_finds_no_server_error(logged_in, staff, db: Session) -> None:
    booked = book(db)  # a patient, an appointment, a link: ids that exist for the fuzzer
    send(db, booked.appointment_id)
    client = logged_in(staff.admin)
    served = client.get("/openapi.json")
    assert served.status_code == 200
    schema = schemathesis.openapi.from_dict(served.json())
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzed = [
        op
        for op in operations
        if not op.path.startswith(EXCLUDED_PREFIXES)
        and (op.method.upper(), op.path) not in EXCLUDED
    ]
    assert len(fuzzed) > 80

    failures: list[str] = []
    for role in (staff.admin, staff.secretary):
        client = logged_in(role)
        for operation in fuzzed:
            _fuzz(client, operation, failures, role)
            assert client.get("/api/csrf").status_code == 200, f"logged out by {operation.label}"
    assert not failures, "\n".join(failures[:30])
