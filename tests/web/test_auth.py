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


# Login throttling: slowed, never locked; per (account, address); trusted-device cookies.


def _browser(app, address: str = "203.0.113.7") -> TestClient:
    """Another browser on the practice's network (its own cookies, a given address)."""
    return TestClient(app, base_url="http://testserver", client=(address, 50000))


def test_a_slowed_account_says_so_and_when_to_retry(client: TestClient, staff, settings) -> None:
    for _ in range(settings.login_max_failures):
        assert login(client, "medecin", "wrong-password").status_code == 401
    blocked = login(client, "medecin", PASSWORD)
    assert blocked.status_code == 429
    assert "connexion ralentie" in blocked.text
    assert 0 < int(blocked.headers["retry-after"]) <= settings.login_first_delay_seconds
    client.cookies.set("accueil_lang", "en")
    english = login(client, "medecin", PASSWORD)
    assert english.status_code == 429 and "logins are slowed down" in english.text


def test_one_attacker_cannot_lock_the_practice_out(app, staff, db: Session, settings) -> None:
    """The acceptance case: everybody shares the proxy's address."""
    usual = _browser(app, "10.0.0.5")
    victims_usual = _browser(app, "10.0.0.5")
    assert login(usual, "secretaire").status_code == 303  # both browsers logged in before
    assert login(victims_usual, "medecin").status_code == 303
    assert usual.cookies.get("accueil_device") and victims_usual.cookies.get("accueil_device")
    attacker = _browser(app, "10.0.0.5")
    for number in range(21):
        assert login(attacker, f"inconnu{number}", "guess-password").status_code == 401
    statuses = [login(attacker, "medecin", f"guess-{n}").status_code for n in range(25)]
    assert statuses[: settings.login_max_failures] == [401] * settings.login_max_failures
    assert set(statuses[settings.login_max_failures :]) == {429}  # slowed, no more guesses
    # The attacker made 5 password guesses in all: the refusals do not verify a password.
    guesses = db.exec(
        select(AuditEvent).where(
            AuditEvent.action == "auth.login_failed", AuditEvent.actor_name == "medecin"
        )
    ).all()
    assert len(guesses) == settings.login_max_failures
    # The victim's usual browser and a colleague's log in at once with the right password.
    assert login(victims_usual, "medecin").status_code == 303
    assert login(usual, "secretaire").status_code == 303
    # An unknown-username spray slows nobody: a new browser for another account still works.
    assert login(_browser(app, "10.0.0.5"), "admin").status_code == 303


def test_the_device_cookie_is_signed_httponly_and_bound_to_the_account(
    app, staff, settings
) -> None:
    browser = _browser(app)
    response = login(browser, "secretaire")
    cookie = next(c for c in response.headers.get_list("set-cookie") if "accueil_device=" in c)
    assert "httponly" in cookie.lower() and "path=/login" in cookie.lower()
    # Trusted for the secretary only: the doctor's account from this browser is still slowed.
    for _ in range(settings.login_max_failures):
        assert login(_browser(app), "medecin", "wrong-password").status_code == 401
    assert login(browser, "medecin", PASSWORD).status_code == 429
    # A forged cookie is no trusted device.
    for _ in range(settings.login_max_failures):
        assert login(_browser(app), "secretaire", "wrong-password").status_code == 401
    forged = _browser(app)
    forged.cookies.set(
        "accueil_device", browser.cookies["accueil_device"][:-2] + "xx", path="/login"
    )
    assert login(forged, "secretaire").status_code == 429
    assert login(browser, "secretaire").status_code == 303


def test_a_trusted_device_is_slowed_by_its_own_failures(app, staff, settings) -> None:
    browser = _browser(app)
    assert login(browser, "secretaire").status_code == 303
    for _ in range(settings.login_max_failures):
        assert login(browser, "secretaire", "wrong-password").status_code == 401
    assert login(browser, "secretaire").status_code == 429
    assert login(_browser(app, "198.51.100.9"), "secretaire").status_code == 303


def test_failures_spread_over_addresses_slow_the_account(app, staff, settings) -> None:
    allowance = settings.login_max_failures * 4
    for number in range(allowance):
        address = f"198.51.100.{number + 1}"
        assert login(_browser(app, address), "medecin", "wrong-password").status_code == 401
    assert login(_browser(app, "192.0.2.1"), "medecin").status_code == 429


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    app, staff, db: Session, settings
) -> None:
    spoofed = _browser(app, "203.0.113.7")
    token = csrf_from(spoofed)
    spoofed.post(
        "/login",
        data={"username": "secretaire", "password": "wrong-password", "csrf_token": token},
        headers={"x-forwarded-for": "192.0.2.50"},
    )
    settings.trusted_proxies = ("10.0.0.0/8",)
    proxied = _browser(app, "10.1.2.3")
    token = csrf_from(proxied)
    proxied.post(
        "/login",
        data={"username": "secretaire", "password": "wrong-password", "csrf_token": token},
        headers={"x-forwarded-for": "192.0.2.99, 198.51.100.20, 10.9.9.9"},
    )
    events = db.exec(
        select(AuditEvent).where(AuditEvent.action == "auth.login_failed").order_by(AuditEvent.id)
    ).all()
    assert [e.client_address for e in events] == ["203.0.113.7", "198.51.100.20"]
