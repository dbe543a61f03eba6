"""Whatever a patient (or a broken client) sends to the pre-consultation routes, the answer is a
clear message in the page's language or a harmless result: never a server error, and nothing
typed is lost (a refused answer comes back in its field)."""

import html as markup
import json

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from models.questionnaires import PreConsultation
from tests.support.preconsultation import autosave, book, link_csrf, send, session_csrf, verify

HTML = {"accept": "text/html"}
WORLD = "J'ai mal 🤕👍🏽 — 头痛 — صداع شديد — Kopfschmerzen — боль"
MARKUP = "<script>alert('x')</script><b>gras</b> & <img src=x onerror=alert(1)>"


def _start(client: TestClient, db: Session) -> str:
    sent = send(db, book(db).appointment_id)
    assert verify(client, sent.path).status_code == 303
    return sent.path


def _answers(db: Session) -> dict:
    db.expire_all()
    return db.exec(select(PreConsultation)).one().answers


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


def _field(html: str, name: str) -> str:
    """The value a text field or a textarea shows, unescaped."""
    text = html.split(f'name="{name}"', 1)[1]
    if text.split(">", 1)[0].find('value="') >= 0:
        return markup.unescape(text.split('value="', 1)[1].split('"', 1)[0])
    return markup.unescape(text.split(">", 1)[1].split("</textarea>", 1)[0])


def test_an_over_long_answer_is_refused_with_its_text_kept(client: TestClient, db: Session) -> None:
    path = _start(client, db)
    long_text = "douleur " * 400  # 3,200 characters: over the 2,000 of the field
    page = _post_step(client, path, 1, [("motif", long_text), ("intensite", "6")])
    assert page.status_code == 422
    assert "2000 caractères au plus" in page.text and "Vos réponses sont gardées" in page.text
    assert _field(page.text, "motif") == long_text  # shown back as typed: nothing lost
    assert _field(page.text, "intensite") == "6"
    assert _answers(db) == {"intensite": 6}  # the valid answer is saved meanwhile


def test_a_refused_number_stays_in_its_field_in_the_page_language(
    client: TestClient, db: Session
) -> None:
    path = _start(client, db)
    client.cookies.set("accueil_lang", "en")
    page = _post_step(client, path, 1, [("motif", WORLD), ("intensite", "😀 sept")])
    assert page.status_code == 422
    assert "whole number expected" in page.text and "nombre entier" not in page.text
    assert _field(page.text, "intensite") == "😀 sept"
    assert _field(page.text, "motif") == WORLD
    assert _answers(db) == {"motif": WORLD}


def test_markup_emoji_and_other_languages_are_kept_as_text(
    client: TestClient, db: Session, logged_in
) -> None:
    path = _start(client, db)
    saved = _post_step(client, path, 1, [("motif", MARKUP)])
    assert saved.status_code == 303
    autosave(client, path, {"traitements-en-cours": True, "traitements-liste": WORLD}, step=3)
    assert _answers(db)["motif"] == MARKUP and _answers(db)["traitements-liste"] == WORLD
    review = client.get(f"{path}/relecture", headers=HTML)
    assert review.status_code == 200
    assert "<script>alert" not in review.text and "<b>gras" not in review.text
    assert MARKUP in markup.unescape(review.text) and WORLD in markup.unescape(review.text)
    step = client.get(f"{path}/etape/1", headers=HTML)
    assert _field(step.text, "motif") == MARKUP
    appointment_id = db.exec(select(PreConsultation)).one().appointment_id
    staff = logged_in("medecin").get(f"/agenda/appointments/{appointment_id}", headers=HTML)
    assert staff.status_code == 200 and "<script>alert" not in staff.text


def test_malformed_step_fields_get_a_message_not_an_error(client: TestClient, db: Session) -> None:
    path = _start(client, db)
    _post_step(client, path, 1, [("motif", "Toux")])
    page = _post_step(
        client,
        path,
        2,
        [
            ("symptomes", "toux"),
            ("symptomes", "<b>inconnu</b>"),  # a code no option has
            ("moral", "bien"),
            ("moral", "triste"),  # two answers to a one-choice question: the first counts
            ("debut-brutal", "peut-être"),
        ],
        nav="🙂",
    )
    assert page.status_code == 422
    assert "choix inconnu" in page.text and "répondez oui ou non" in page.text
    assert "<b>inconnu</b>" not in page.text
    assert 'value="toux" checked' in page.text  # the ticks the patient made are still ticked
    assert 'id="debut-brutal-true"' in page.text
    assert _answers(db)["moral"] == "bien"


def test_a_step_that_does_not_exist_is_a_clear_page(client: TestClient, db: Session) -> None:
    path = _start(client, db)
    for number in ("0", "99", "abc", "1.5", "6"):
        shown = client.get(f"{path}/etape/{number}", headers=HTML, follow_redirects=False)
        assert shown.status_code in (303, 422), number
        if shown.status_code == 422:  # a page in the patient's language, not a stack trace
            assert '<html lang="fr">' in shown.text and "Traceback" not in shown.text


def test_control_characters_and_broken_utf8_are_harmless(client: TestClient, db: Session) -> None:
    path = _start(client, db)
    page = client.get(f"{path}/etape/1", headers=HTML)
    body = (
        f"link_csrf={link_csrf(page.text)}&csrf_token={session_csrf(page.text)}"
        "&nav=next&motif=toux%00s%C3%A8che%FF%FE%01&intensite=%FF"
    )
    posted = client.post(
        f"{path}/etape/1",
        content=body.encode(),
        headers={**HTML, "content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert posted.status_code in (303, 422)
    motif = _answers(db)["motif"]
    assert "\x00" not in motif and "\x01" not in motif and motif.startswith("touxsèche")
    assert client.get(f"{path}/relecture", headers=HTML).status_code == 200


def _autosave_raw(client: TestClient, path: str, body: bytes):
    page = client.get(f"{path}/etape/1", headers=HTML)
    return client.post(
        f"{path}/answers",
        content=body,
        headers={
            "content-type": "application/json",
            "accept": "application/json",
            "x-link-csrf": link_csrf(page.text),
            "x-csrf-token": session_csrf(page.text),
        },
    )


def test_autosave_refuses_shapes_no_question_takes(client: TestClient, db: Session) -> None:
    path = _start(client, db)
    answers = {
        "motif": {"text": "Toux"},  # an object: not stored as its Python spelling
        "traitements-liste": [["a"]],
        "intensite": "5",
        "antecedents-autres": "asthme\u0000 enfant",
        "allergies-liste": "pollen \ud83d",  # half an emoji, as a JSON client may send it
    }
    saved = _autosave_raw(client, path, json.dumps({"answers": answers}).encode())
    body = saved.json()
    assert saved.status_code == 200
    assert body["errors"].keys() == {"motif", "traitements-liste"}
    assert "Réponse illisible." in body["detail"]
    assert sorted(body["saved"]) == ["allergies-liste", "antecedents-autres", "intensite"]
    answers = _answers(db)
    assert answers["antecedents-autres"] == "asthme enfant"
    assert answers["allergies-liste"] == "pollen \ufffd" and "motif" not in answers
    assert client.get(f"{path}/relecture", headers=HTML).status_code == 200


def test_autosave_of_an_over_long_text_says_so_in_the_page_language(
    client: TestClient, db: Session
) -> None:
    path = _start(client, db)
    client.cookies.set("accueil_lang", "en")
    saved = autosave(client, path, {"motif": "x" * 100_000, "intensite": "3"})
    assert saved.status_code == 200
    assert saved.json()["errors"]["motif"].endswith(": at most 2000 characters.")
    assert _answers(db) == {"intensite": 3}


def test_unreadable_autosave_bodies_get_a_message(client: TestClient, db: Session) -> None:
    path = _start(client, db)
    bodies = [b"not json", b"[1, 2]", b'{"answers": []}', b'{"answers": {}}', b'{"a": 1}']
    bodies.append(json.dumps({"answers": {f"q{n}": "x" for n in range(51)}}).encode())
    for body in bodies:
        refused = _autosave_raw(client, path, body)
        assert 400 <= refused.status_code < 500, body
        assert refused.json()["detail"] == "Réponses illisibles."
    client.cookies.set("accueil_lang", "en")
    assert _autosave_raw(client, path, b"[]").json()["detail"] == "Unreadable answers."
    assert _answers(db) == {}


def test_a_strange_birth_date_is_a_wrong_birth_date(client: TestClient, db: Session) -> None:
    sent = send(db, book(db).appointment_id)
    for birth_date in ("😀", "<b>1980</b>", "1980-13-45", "x" * 5000):  # 4: the 5th locks
        answer = verify(client, sent.path, birth_date)
        assert answer.status_code == 422, birth_date
        assert "La date de naissance ne correspond pas" in answer.text
        assert "<b>1980" not in answer.text
