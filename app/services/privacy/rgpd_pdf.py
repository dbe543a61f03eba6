"""The RGPD export of one patient as a readable PDF (fpdf2, the letters' embedded font:
``practice_pdf``)."""

import json
from typing import Any

from app.services.documents.practice_pdf import start_pdf

SKIPPED = {"patient_id", "created_by_id", "updated_at"}


def _value(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def export_pdf(data: dict[str, Any], *, practice: str) -> bytes:
    """Every section of the export, one record after the other, as labelled lines."""
    from fpdf.enums import WrapMode  # with the first PDF, not at start-up (``practice_pdf``)

    pdf, font, clean = start_pdf(practice=practice, title="Export RGPD")
    pdf.set_margins(18, 16, 18)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()

    def line(text: str, *, size: float = 9, style: str = "") -> None:
        pdf.set_font(font.family, style, size)
        pdf.multi_cell(
            0, size * 0.5, clean(text), new_x="LMARGIN", new_y="NEXT", wrapmode=WrapMode.CHAR
        )

    def record(row: dict[str, Any]) -> None:
        for key, value in row.items():
            if key == "answers" or (key not in SKIPPED and not isinstance(value, list | dict)):
                line(f"{key} : {_value(value)}")
        pdf.ln(2)

    line(f"Export des données du patient n° {data['patient']['id']}", size=14, style="B")
    line(f"Généré le {data['generated_at']} ({data['format']})")
    pdf.ln(4)
    sections = [
        ("Fiche patient", [data["patient"]]),
        ("Rendez-vous", data["appointments"]),
        ("Liste d'attente", data["waiting_list"]),
        ("Pré-consultations (le détail FHIR figure dans l'export JSON)", data["preconsultations"]),
        ("Fiches de consignes (texte approuvé)", data.get("instruction_sheets", [])),
        ("Notifications", data["notifications"]),
        ("Consentements", data["notification_consents"]),
    ]
    for title, rows in sections:
        line(f"{title} ({len(rows)})", size=11.5, style="B")
        for row in rows:
            record(row)
        pdf.ln(2)
    line(f"Documents générés ({len(data['documents'])})", size=11.5, style="B")
    for document in data["documents"]:
        record({k: v for k, v in document.items() if k not in ("content", "versions")})
        for version in document["versions"]:
            line(f"Version {version['number']} ({version['change']}, {version['created_at']})")
            line(version["text"] or "-")
        pdf.ln(2)
    conversations = data.get("assistant_conversations", [])
    line(f"Conversations de l'assistant ({len(conversations)})", size=11.5, style="B")
    roles = {
        "secretary": "Secrétariat",
        "assistant": "Assistant",
        "tool_call": "Appel d'outil",
        "tool_result": "Résultat d'outil",
    }
    for conversation in conversations:
        line(f"{conversation['title']} ({conversation['created_at']})", style="B")
        for message in conversation["messages"]:
            line(f"{roles.get(message['role'], message['role'])} : {message['text']}", size=8)
        pdf.ln(2)
    line(f"Journal d'audit ({len(data['audit_events'])})", size=11.5, style="B")
    for event in data["audit_events"]:
        line(
            f"{event['occurred_at']}  {event['actor_kind']}:{event['actor_name']}  "
            f"{event['action']}  {event['record_type'] or ''} {event['record_id'] or ''}  "
            f"{event['outcome']}",
            size=8,
        )
    return bytes(pdf.output())
