"""The linkId migration: the group that shared ``motif`` with its first question is renamed in
stored questionnaires and responses, and the answers read back unchanged."""

from sqlmodel import Session

from app.services.preconsultation import questionnaires as qs
from models.migrate import downgrade, upgrade
from models.questionnaires import PreConsultation, Questionnaire
from tests.preconsultation.test_fhir_invariants import (
    QUESTIONNAIRE_RULES,
    RESPONSE_RULES,
    broken,
)
from tests.support.preconsultation import book, send

BEFORE = "c81d2e6f4a10"  # the revision before the migration
ANSWERS = {"motif": "Toux depuis trois jours", "intensite": 3, "symptomes": ["fievre", "toux"]}


def _group_ids(resource: dict) -> list[str]:
    return [item["linkId"] for item in resource["item"]]


def test_stored_questionnaires_and_responses_get_unique_link_ids(
    db: Session, database_url: str
) -> None:
    sent = send(db, book(db).appointment_id)
    row = db.get(Questionnaire, sent.questionnaire.id)
    assert row is not None and row.slug == "consultation-generale"
    pre = db.get(PreConsultation, sent.preconsultation.id)
    assert pre is not None
    pre.answers = dict(ANSWERS)
    pre.response = qs.build_response(
        row, ANSWERS, authored="2026-12-04T10:00:00+00:00", subject_reference="Patient/1"
    )
    db.add(pre)
    db.commit()
    ids = (row.id, pre.id)
    db.close()

    downgrade(database_url, BEFORE)  # the data as the old version stored it
    with Session(db.get_bind()) as old:
        old_row, old_pre = old.get(Questionnaire, ids[0]), old.get(PreConsultation, ids[1])
        assert old_row is not None and old_pre is not None and old_pre.response is not None
        assert _group_ids(old_row.resource)[0] == "motif"
        assert broken(old_row.resource, QUESTIONNAIRE_RULES) == ["que-2"]
        assert _group_ids(old_pre.response)[0] == "motif"

    upgrade(database_url)
    with Session(db.get_bind()) as new:
        new_row, new_pre = new.get(Questionnaire, ids[0]), new.get(PreConsultation, ids[1])
        assert new_row is not None and new_pre is not None and new_pre.response is not None
        assert _group_ids(new_row.resource)[0] == "motif-groupe"
        assert broken(new_row.resource, QUESTIONNAIRE_RULES) == []
        assert _group_ids(new_pre.response)[0] == "motif-groupe"
        assert broken(new_pre.response, RESPONSE_RULES) == []
        assert qs.answers_from_response(new_pre.response) == ANSWERS  # old answers still read
        assert new_pre.answers == ANSWERS
        # The migrated row is the bundled file again: re-importing it changes nothing.
        assert all(not created for _, created in qs.import_bundled(new))
