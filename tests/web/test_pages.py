"""Every page renders for the roles that may see it, in French and English, from the box alone."""

import re

import pytest
from sqlmodel import Session

from app.services.core.audit import Actor
from app.services.patients.records import create_patient
from models.audit import ActorKind
from models.patients import PatientCreate, Sex

HTML = {"accept": "text/html"}
# Any absolute URL, protocol-relative URL or CSS @import pointing off the box.
EXTERNAL = re.compile(r"""(?:src|href|action|content|url)\s*[=(]\s*["']?\s*(?:https?:)?//""", re.I)


@pytest.fixture
def patient_id(db: Session) -> int:
    actor = Actor(kind=ActorKind.system, name="test")
    patient = create_patient(
        db,
        actor,
        PatientCreate(
            birth_name="Lefèvre", first_name="Hélène", birth_date="1975-03-04", sex=Sex.female
        ),
    )
    db.commit()
    return patient.id


def _pages(patient_id: int) -> dict[str, list[str]]:
    patient_pages = [
        "/",
        "/patients",
        "/patients?q=lefevre",
        "/patients/new",
        f"/patients/{patient_id}",
        f"/patients/{patient_id}/edit",
    ]
    return {
        "secretaire": patient_pages,
        "medecin": patient_pages,
        "admin": ["/", "/admin/audit", "/admin/audit?action=patient.&page=1", "/docs"],
    }


def test_no_page_loads_anything_from_outside_the_box(logged_in, client, patient_id) -> None:
    for username, paths in {"anonymous": ["/login"], **_pages(patient_id)}.items():
        if username != "anonymous":
            logged_in(username)
        for path in paths:
            page = client.get(path, headers=HTML)
            assert page.status_code == 200, (username, path)
            assert not EXTERNAL.search(page.text), (path, EXTERNAL.search(page.text))
    css = client.get("/static/accueil.css").text
    assert "@import" not in css and not re.search(r"url\(\s*['\"]?(https?:)?//", css)
    swagger = client.get("/static/swagger/swagger-ui-bundle.js")
    assert swagger.status_code == 200


def test_pages_carry_a_strict_content_security_policy(client) -> None:
    page = client.get("/login", headers=HTML)
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"


def test_pages_switch_to_english(logged_in, client, patient_id) -> None:
    logged_in("secretaire")
    client.get("/lang/en")
    page = client.get(f"/patients/{patient_id}", headers=HTML)
    assert '<html lang="en">' in page.text and "Date of birth" in page.text
    client.get("/lang/fr")
    page = client.get(f"/patients/{patient_id}", headers=HTML)
    assert '<html lang="fr">' in page.text and "Date de naissance" in page.text


def test_unknown_page_is_a_clear_404(logged_in, client) -> None:
    logged_in("secretaire")
    page = client.get("/nowhere", headers=HTML)
    assert page.status_code == 404 and "Page introuvable." in page.text


def test_audit_page_filters_events(logged_in, client, patient_id) -> None:
    logged_in("secretaire")
    client.get(f"/patients/{patient_id}", headers=HTML)
    logged_in("admin")
    page = client.get("/admin/audit", params={"action": "patient.read"}, headers=HTML)
    assert "1 évènement(s)" in page.text and "patient.read" in page.text
    assert "secretaire" in page.text
    page = client.get("/admin/audit", params={"patient_id": str(patient_id)}, headers=HTML)
    assert "patient.create" in page.text and "patient.read" in page.text
    page = client.get("/admin/audit", params={"actor": "nobody"}, headers=HTML)
    assert "0 évènement(s)" in page.text


def test_home_lists_todays_appointments(logged_in, client, db: Session, patient_id) -> None:
    from datetime import datetime, timedelta

    from models.appointments import Appointment
    from models.practice import Practitioner

    practitioner = Practitioner(first_name="Claire", last_name="Martin")
    db.add(practitioner)
    db.flush()
    tz = client.app.state.settings.tz
    start = datetime.now(tz).replace(hour=12, minute=0, second=0, microsecond=0)
    db.add(
        Appointment(
            practitioner_id=practitioner.id,
            patient_id=patient_id,
            starts_at=start,
            ends_at=start + timedelta(minutes=20),
            reason="Fièvre",
        )
    )
    db.commit()
    logged_in("secretaire")
    page = client.get("/", headers=HTML)
    assert "12:00–12:20" in page.text and "Dr Claire Martin" in page.text
    assert "Fièvre" in page.text and "Lefèvre Hélène" in page.text


def test_error_pages_render_for_a_logged_in_user(logged_in, client) -> None:
    logged_in("secretaire")
    missing = client.get("/patients/999999", headers=HTML)
    assert missing.status_code == 404 and "Patient introuvable." in missing.text
    assert "Secretaire" in missing.text  # the header still knows who is logged in
    forbidden = client.get("/admin/audit", headers=HTML)
    assert forbidden.status_code == 403 and "accès" in forbidden.text


def test_admin_creates_and_revokes_an_mcp_client(logged_in, client, db) -> None:
    from sqlmodel import select

    from models.mcp_clients import McpClient

    logged_in("admin")
    token = client.headers["x-csrf-token"]
    page = client.post(
        "/admin/mcp/clients", data={"csrf_token": token, "name": "Poste accueil"}, headers=HTML
    )
    assert page.status_code == 200 and "Authorization: Bearer acc_" in page.text
    shown = page.text.split("Authorization: Bearer ")[1].split("<")[0]
    stored = db.exec(select(McpClient)).one()
    assert stored.name == "Poste accueil" and shown not in stored.token_hash
    again = client.post(
        "/admin/mcp/clients", data={"csrf_token": token, "name": "Poste accueil"}, headers=HTML
    )
    assert again.status_code == 409 and "existe déjà" in again.text
    client.post(f"/admin/mcp/clients/{stored.id}/revoke", data={"csrf_token": token})
    db.expire_all()
    assert db.get(McpClient, stored.id).revoked_at is not None
    listing = client.get("/admin/mcp", headers=HTML).text
    assert "Révoqué" in listing and shown not in listing


def test_oversized_requests_are_refused_before_reading(logged_in, client, settings) -> None:
    logged_in("admin")
    largest = max(settings.knowledge_max_upload_mb, settings.speech_max_upload_mb)
    limit = (largest + 1) * 1024 * 1024
    response = client.post(
        "/admin/connaissances",
        content=b"x" * 16,
        headers={"content-length": str(limit + 1), "content-type": "multipart/form-data"},
    )
    assert response.status_code == 413
    assert "trop volumineux" in response.json()["detail"]
