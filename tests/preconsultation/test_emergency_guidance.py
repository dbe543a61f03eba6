"""What the patient sees about emergencies: the numbers on every page of the pre-consultation,
and the urgent guidance box, which follows the saved answers at each autosave, shows on the next
page without JavaScript, and once shown stays until the answers are sent."""

import html as markup
import re

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from models.questionnaires import PreConsultation
from tests.support.preconsultation import autosave, book, link_csrf, send, session_csrf, verify

HTML = {"accept": "text/html"}
URGENT_TICKS = ["douleur-thoracique", "essoufflement"]  # chest pain with breathlessness


def _start(client: TestClient, db: Session, visit_type: str = "consultation") -> str:
    sent = send(db, book(db, visit_type).appointment_id)
    assert verify(client, sent.path).status_code == 303
    return sent.path


def _steps(client: TestClient, path: str) -> range:
    """The step numbers of the link's questionnaire, read from step 1's "étape 1 sur N"."""
    page = client.get(f"{path}/etape/1", headers=HTML).text
    found = re.search(r"(?:étape|step) 1 (?:sur|of) (\d+)", page)
    assert found, "no step count on the first step"
    return range(1, int(found.group(1)) + 1)


def _notice(html: str) -> str:
    """The emergency notice's markup (fails when the page has none)."""
    found = re.search(r'<div class="emergency-notice" role="note".*?</dl>\s*</div>', html, re.S)
    assert found, "no emergency notice on the page"
    return markup.unescape(found.group(0))


def _box(html: str) -> tuple[bool, str]:
    """(shown, text) of the urgent box."""
    found = re.search(r'<div id="urgent"([^>]*)>(.*?)</div>', html, re.S)
    assert found, "no urgent box on the page"
    return " hidden" not in found.group(1), markup.unescape(re.sub(r"<[^>]+>", " ", found.group(2)))


def _post_step(client: TestClient, path: str, number: int, fields: list, nav: str = "next"):
    page = client.get(f"{path}/etape/{number}", headers=HTML)
    data: dict[str, list[str]] = {
        "link_csrf": [link_csrf(page.text)],
        "csrf_token": [session_csrf(page.text)],
        "nav": [nav],
    }
    for name, value in fields:
        data.setdefault(name, []).append(value)
    return client.post(f"{path}/etape/{number}", data=data, headers=HTML, follow_redirects=False)


def _submit(client: TestClient, path: str) -> str:
    review = client.get(f"{path}/relecture", headers=HTML)
    done = client.post(
        f"{path}/envoyer",
        data={"link_csrf": link_csrf(review.text), "csrf_token": session_csrf(review.text)},
        headers=HTML,
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"].endswith("/merci")
    return client.get(done.headers["location"], headers=HTML).text


def test_every_patient_page_shows_the_emergency_numbers(client: TestClient, db: Session) -> None:
    sent = send(db, book(db).appointment_id)
    pages = [client.get(sent.path, headers=HTML).text]  # the identity page
    assert verify(client, sent.path).status_code == 303
    steps = _steps(client, sent.path)
    pages += [client.get(f"{sent.path}/etape/{n}", headers=HTML).text for n in steps]
    pages.append(client.get(f"{sent.path}/relecture", headers=HTML).text)
    for html in pages:
        notice = _notice(html)
        for target in ('href="tel:15"', 'href="tel:112"', 'href="tel:3114"', 'href="sms:114"'):
            assert target in notice
        assert "sourdes ou malentendantes" in notice and "n'attendez pas" in notice
        assert "Appeler le 15" not in notice  # calm: the call button is the urgent box's
    problem = client.get("/p/not-a-token", headers=HTML)
    assert problem.status_code == 404 and 'href="tel:15"' in _notice(problem.text)


def test_the_notice_speaks_english_on_english_pages(client: TestClient, db: Session) -> None:
    path = _start(client, db)
    client.cookies.set("accueil_lang", "en")
    notice = _notice(client.get(f"{path}/etape/1", headers=HTML).text)
    assert "Emergency?" in notice and "deaf or hard of hearing" in notice
    assert 'href="sms:114"' in notice and "Urgence" not in notice


def test_an_urgent_tick_fills_the_box_at_the_autosave(client: TestClient, db: Session) -> None:
    path = _start(client, db)
    calm = autosave(client, path, {"motif": "Toux", "symptomes": ["toux"]}, step=2)
    assert calm.status_code == 200 and calm.json()["urgent"] == []
    urgent = autosave(client, path, {"symptomes": URGENT_TICKS}, step=2)
    assert urgent.status_code == 200
    messages = urgent.json()["urgent"]
    assert messages and any("15" in m for m in messages)
    shown, text = _box(client.get(f"{path}/etape/2", headers=HTML).text)
    assert shown and all(m in text for m in messages)


def test_without_javascript_the_next_page_shows_the_box(client: TestClient, db: Session) -> None:
    path = _start(client, db)
    assert _box(client.get(f"{path}/etape/2", headers=HTML).text)[0] is False
    moved = _post_step(client, path, 2, [("symptomes", s) for s in URGENT_TICKS])
    assert moved.status_code == 303 and moved.headers["location"] == f"{path}/etape/3"
    shown, text = _box(client.get(moved.headers["location"], headers=HTML).text)
    assert shown and "appelez le 15" in text
    db.expire_all()
    assert db.exec(select(PreConsultation)).one().red_flags  # the staff see it too


def test_once_shown_the_box_stays_until_the_answers_are_sent(
    client: TestClient, db: Session
) -> None:
    path = _start(client, db)
    autosave(client, path, {"motif": "Douleur"})
    first = autosave(client, path, {"symptomes": URGENT_TICKS}, step=2).json()["urgent"]
    untick = autosave(client, path, {"symptomes": ["toux"]}, step=2)
    reminder = untick.json()["urgent"]
    assert reminder and reminder != first  # the guidance gives way to the reminder
    assert "signalé plus tôt" in reminder[0] and "15" in reminder[0]
    for page in (f"{path}/etape/3", f"{path}/relecture"):
        shown, text = _box(client.get(page, headers=HTML).text)
        assert shown and "signalé plus tôt" in text
    # The sign back: its own guidance again, not the reminder.
    again = autosave(client, path, {"symptomes": URGENT_TICKS}, step=2).json()["urgent"]
    assert again == first
    shown, text = _box(_submit(client, path))
    assert shown and all(m in text for m in first)


def test_a_patient_with_nothing_alarming_never_sees_the_box(
    client: TestClient, db: Session
) -> None:
    path = _start(client, db)
    assert autosave(client, path, {"motif": "Renouvellement, tout va bien"}).json()["urgent"] == []
    saved = autosave(client, path, {"symptomes": ["toux"], "moral": "bien"}, step=2)
    assert saved.json()["urgent"] == []
    for number in _steps(client, path):
        assert _box(client.get(f"{path}/etape/{number}", headers=HTML).text)[0] is False
    assert _box(client.get(f"{path}/relecture", headers=HTML).text)[0] is False
    assert _box(_submit(client, path))[0] is False


def test_guidance_comes_in_the_page_language(client: TestClient, db: Session) -> None:
    path = _start(client, db)
    client.cookies.set("accueil_lang", "en")
    messages = autosave(client, path, {"symptomes": URGENT_TICKS}, step=2).json()["urgent"]
    assert messages and "15" in messages[0] and "appelez" not in messages[0]
    shown, text = _box(client.get(f"{path}/etape/3", headers=HTML).text)
    assert shown and messages[0] in text
    reminder = autosave(client, path, {"symptomes": ["toux"]}, step=2).json()["urgent"]
    assert reminder[0].startswith("Earlier you reported")
