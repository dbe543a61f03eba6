"""Login, logout, wrong passwords, the login rate limit, CSRF and safe redirects."""

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.services.core.audit import Actor
from app.services.identity.users import set_password
from models.audit import AuditEvent
from models.users import User
from tests.conftest import PASSWORD, csrf_from, login

HTML = {"accept": "text/html"}


def test_login_page_is_french_by_default(client: TestClient) -> None:
    page = client.get("/login", headers=HTML)
    assert page.status_code == 200
    assert "Connexion" in page.text and "Mot de passe" in page.text


def test_login_succeeds_and_opens_the_home_page(client: TestClient, staff, db: Session) -> None:
    response = login(client, "secretaire")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "accueil_session=" in cookie and "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    home = client.get("/", headers=HTML)
    assert home.status_code == 200
    assert "Bonjour, Secretaire" in home.text
    events = db.exec(select(AuditEvent).where(AuditEvent.action == "auth.login")).all()
    assert [e.actor_name for e in events] == ["secretaire"]
    assert events[0].client_address == "testclient"


def test_wrong_password_is_rejected_and_audited(client: TestClient, staff, db: Session) -> None:
    response = login(client, "secretaire", "not-the-password")
    assert response.status_code == 401
    assert "Identifiant ou mot de passe incorrect." in response.text
    assert client.get("/", headers=HTML, follow_redirects=False).status_code == 303
    failures = db.exec(select(AuditEvent).where(AuditEvent.action == "auth.login_failed")).all()
    assert len(failures) == 1 and failures[0].outcome == "denied"


def test_unknown_user_gets_the_same_message(client: TestClient, staff) -> None:
    response = login(client, "nobody", "whatever-password")
    assert response.status_code == 401
    assert "Identifiant ou mot de passe incorrect." in response.text


def test_rate_limit_blocks_after_repeated_failures(client: TestClient, staff, settings) -> None:
    for _ in range(settings.login_max_failures):
        assert login(client, "medecin", "wrong-password").status_code == 401
    blocked = login(client, "medecin", PASSWORD)  # even the right password is refused now
    assert blocked.status_code == 429
    assert "Trop de tentatives" in blocked.text
    assert login(client, "secretaire").status_code == 303  # other accounts unaffected


def test_login_without_csrf_token_is_refused(client: TestClient, staff) -> None:
    client.get("/login", headers=HTML)
    response = client.post(
        "/login",
        data={"username": "secretaire", "password": PASSWORD},
        headers=HTML,
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "formulaire a expiré" in response.text


def test_api_write_without_csrf_header_is_refused(logged_in) -> None:
    client = logged_in("secretaire")
    token = client.headers.pop("x-csrf-token")
    payload = {
        "birth_name": "Durand",
        "first_name": "Marie",
        "birth_date": "1980-01-02",
        "sex": "F",
    }
    assert client.post("/api/patients", json=payload).status_code == 403
    ok = client.post("/api/patients", json=payload, headers={"x-csrf-token": token})
    assert ok.status_code == 201


def test_logout_ends_the_session(logged_in, db: Session) -> None:
    client = logged_in("admin")
    token = csrf_from(client, "/")
    response = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303
    assert (
        client.get("/", headers=HTML, follow_redirects=False)
        .headers["location"]
        .startswith("/login")
    )
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "auth.logout")).first()


def test_next_parameter_cannot_redirect_off_site(client: TestClient, staff) -> None:
    token = csrf_from(client)
    for target, expected in (
        ("/patients", "/patients"),
        ("https://evil.example", "/"),
        ("//evil.example", "/"),
    ):
        client.cookies.clear()
        token = csrf_from(client)
        response = client.post(
            "/login",
            data={
                "username": "secretaire",
                "password": PASSWORD,
                "csrf_token": token,
                "next": target,
            },
            follow_redirects=False,
        )
        assert response.headers["location"] == expected


def test_password_change_ends_other_sessions(logged_in, db: Session) -> None:
    client = logged_in("secretaire")
    assert client.get("/api/patients").status_code == 200
    user = db.exec(select(User).where(User.username == "secretaire")).one()
    set_password(db, user, "a-brand-new-password", Actor.system("test"))
    db.commit()
    assert client.get("/api/patients").status_code == 401


def test_inactive_account_cannot_log_in(client: TestClient, staff, db: Session) -> None:
    user = db.exec(select(User).where(User.username == "medecin")).one()
    user.is_active = False
    db.add(user)
    db.commit()
    assert login(client, "medecin").status_code == 401
