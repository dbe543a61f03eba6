"""The public slot page is served from a cache of the rendered page: it must never outlive a
change of availability made by this process, reach another process's change within
``FRESH_SECONDS``, and be kept apart per query, language and embed."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert
from sqlmodel import Session

from app.services.booking import availability, throttle
from app.services.booking import rules as booking_rules
from app.services.booking.public_slots import SlotCache
from app.services.scheduling.agenda import book_appointment, cancel_appointment
from app.web.links.online_booking import PageCaches
from models.appointments import Appointment
from models.practice import Absence
from tests.booking.conftest import Practice, first_slot
from tests.support.practice import ACTOR, PARIS, add_patient

SLOTS = "/rendez-vous/creneaux"


@pytest.fixture(autouse=True)
def generous_limits(app) -> None:  # type: ignore[no-untyped-def]
    app.state.booking_limits = throttle.Limits(
        holds_per_address=1000, pow_after_holds=1000, codes_per_contact=1000
    )
    app.state.booking_page_limiter = throttle.PageLimiter(rate=1000, burst=1000)


def _offered(client: TestClient, pid: int, **params: str) -> set[str]:
    page = client.get(SLOTS, params={"praticien": str(pid), "motif": "consultation", **params})
    assert page.status_code == 200
    return set(re.findall(r'name="creneau" value="([^"]+)"', page.text))


def _value(slot) -> str:  # type: ignore[no-untyped-def]
    return f"{slot.practitioner_id}|{slot.starts_at.isoformat()}"


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]*)"', html)
    assert found
    return found.group(1)


def test_a_booking_cancellation_or_absence_made_here_reaches_the_page_at_once(
    client: TestClient, db: Session, practice: Practice
) -> None:
    pid = practice.practitioner_ids[0]
    slot = first_slot(db, pid)
    assert _value(slot) in _offered(client, pid)  # now cached
    patient = add_patient(db, "Durand", "Marie")
    booked = book_appointment(
        db, ACTOR, PARIS, patient_id=patient, practitioner_id=pid, starts_at=slot.starts_at
    )
    db.commit()
    assert _value(slot) not in _offered(client, pid)
    cancel_appointment(db, ACTOR, booked.id or 0)
    db.commit()
    assert _value(slot) in _offered(client, pid)
    db.add(Absence(practitioner_id=pid, starts_at=slot.starts_at, ends_at=slot.ends_at))
    db.commit()
    assert _value(slot) not in _offered(client, pid)


def test_a_slot_held_through_the_page_leaves_every_cached_page(
    client: TestClient, db: Session, practice: Practice
) -> None:
    pid = practice.practitioner_ids[0]
    slot = first_slot(db, pid)
    page = client.get(SLOTS, params={"praticien": str(pid), "motif": "consultation"})
    assert _value(slot) in _offered(client, pid, lang="en")
    picked = client.post(
        "/rendez-vous/reserver",
        data={
            "praticien": str(pid),
            "motif": "consultation",
            "creneau": _value(slot),
            "csrf_token": _csrf(page.text),
        },
        follow_redirects=False,
    )
    assert picked.status_code == 303
    assert _value(slot) not in _offered(client, pid)
    assert _value(slot) not in _offered(client, pid, lang="en")


def test_the_rules_changed_here_reach_the_page_at_once(
    client: TestClient, db: Session, practice: Practice
) -> None:
    assert client.get(SLOTS, params={"praticien": "premier", "motif": "consultation"}).text
    closed = booking_rules.RulesInput(**{**practice.rules.__dict__, "enabled": False})
    booking_rules.save(db, ACTOR, closed)
    db.commit()
    page = client.get(SLOTS, params={"praticien": "premier", "motif": "consultation"})
    assert 'name="creneau"' not in page.text and "pas ouverte" in page.text


def test_another_process_change_is_seen_within_the_fresh_delay(
    app, client: TestClient, db: Session, practice: Practice
) -> None:
    now = [1000.0]  # the cache's clock, moved by the test: a slow machine cannot expire it

    def monotonic() -> float:
        return now[0]

    app.state.booking_pages = PageCaches(
        SlotCache(ttl_seconds=0.5, monotonic=monotonic),
        SlotCache(ttl_seconds=0.5, monotonic=monotonic),
    )
    pid = practice.practitioner_ids[0]
    slot = first_slot(db, pid)
    assert _value(slot) in _offered(client, pid)
    patient = add_patient(db, "Durand", "Marie")
    db.commit()
    # Another process's write: straight to the database, unseen by this process's sessions.
    with app.state.engine.begin() as connection:
        connection.execute(
            insert(Appointment).values(
                practitioner_id=pid,
                patient_id=patient,
                starts_at=slot.starts_at,
                ends_at=slot.ends_at,
                status="booked",
                source="secretary",
                reason="",
                created_at=datetime.now(UTC),
            )
        )
    now[0] += 0.2  # within the delay, before the half-life refresh
    assert _value(slot) in _offered(client, pid)  # cached: within the delay
    now[0] += 0.4  # past the delay
    assert _value(slot) not in _offered(client, pid)


def test_the_cached_page_is_kept_apart_per_query_language_and_embed(
    client: TestClient, db: Session, practice: Practice
) -> None:
    martin, bernard = practice.practitioner_ids
    params = {"praticien": str(martin), "motif": "consultation"}
    french = client.get(SLOTS, params=params)
    english = client.get(SLOTS, params={**params, "lang": "en"})
    embed = client.get(SLOTS, params={**params, "embed": "1"})
    assert "Créneaux libres" in french.text and "Free slots" in english.text
    assert "lang=en" in english.text and "lang=en" not in french.text  # the later page's link
    assert 'class="site-header"' in french.text and 'class="site-header"' not in embed.text
    assert 'name="embed" value="1"' in embed.text
    assert "frame-ancestors 'self'" in embed.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in french.headers["content-security-policy"]
    assert all(v.startswith(f"{martin}|") for v in _offered(client, martin))
    assert all(v.startswith(f"{bernard}|") for v in _offered(client, bernard))
    later = (datetime.now(PARIS).date() + timedelta(days=10)).isoformat()
    assert min(_offered(client, martin, apres=later)) > min(_offered(client, martin))
    vaccination = client.get(SLOTS, params={**params, "motif": "vaccination"})
    assert "Vaccination" in vaccination.text and "Vaccination" not in french.text
    # The page is shared, the CSRF token is each visitor's own.
    other = TestClient(client.app, base_url="http://testserver")
    theirs = other.get(SLOTS, params=params)
    assert _csrf(theirs.text) != _csrf(french.text)
    assert _csrf(french.text) == _csrf(client.get(SLOTS, params=params).text)
    assert "csrf-mark" not in theirs.text


def test_a_bad_choice_is_never_cached(client: TestClient, practice: Practice) -> None:
    for who in ("999", "abc", "premier"):
        page = client.get(SLOTS, params={"praticien": who, "motif": "inconnu"})
        assert page.status_code == 422 and "csrf-mark" not in page.text
    caches = client.app.state.booking_pages  # type: ignore[attr-defined]
    assert all(v is None for v in (caches.pages.peek(k)[0] for k in list(caches.pages._entries)))


def test_the_cache_drops_an_entry_when_availability_changes_and_refreshes_once() -> None:
    cache: SlotCache[int] = SlotCache(ttl_seconds=60)
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get("k", compute) == 1 and cache.get("k", compute) == 1
    assert cache.peek("k") == (1, False)
    availability.changed()  # a commit of this process touched availability
    assert cache.peek("k") == (None, False)
    assert cache.get("k", compute) == 2
    # Past half its life: one caller (only) is told to refresh, the others keep the value.
    entry = cache._entries["k"]
    entry.refresh_at = 0.0
    assert cache.peek("k") == (2, True)
    assert cache.peek("k") == (2, False)
    assert cache.refresh("k", compute) == 3 and cache.peek("k") == (3, False)


def test_a_value_computed_across_a_change_is_not_kept() -> None:
    cache: SlotCache[str] = SlotCache(ttl_seconds=60)

    def racing() -> str:
        availability.changed()  # a booking committed while the page was being read
        return "stale"

    assert cache.get("k", racing) == "stale"
    assert cache.peek("k") == (None, False)


def test_only_writes_to_availability_tables_mark_a_change(db: Session, practice: Practice) -> None:
    before = availability.generation()
    add_patient(db, "Martin", "Paul")
    db.commit()
    assert availability.generation() == before  # a patient record changes no slot
    db.add(
        Absence(practitioner_id=practice.practitioner_ids[0], starts_at=_soon(), ends_at=_soon(1))
    )
    db.rollback()
    db.commit()
    assert availability.generation() == before  # rolled back before any flush
    db.add(
        Absence(practitioner_id=practice.practitioner_ids[0], starts_at=_soon(), ends_at=_soon(1))
    )
    db.commit()
    assert availability.generation() > before


def _soon(hours: int = 0) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(days=3, hours=hours)
