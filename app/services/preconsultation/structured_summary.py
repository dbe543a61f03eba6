"""The structured pre-consultation summary, built from the answers without any language model.

Why deterministic: the embedded model wrote one word, and a physician must be able to trust
every line. Each line is made from named answers, so it cites them (linkIds) by construction,
in the citation shape the review page reads (``{"sections": [{"title", "sentences": [{"text",
"sources"}]}]}``): hovering a line highlights its answers, and edit/approve/reject/rate work
unchanged. The patient's own words are always quoted between « », never interpreted: an
instruction slipped into an answer stays data.

Order (issue 17): reason in the patient's words; red flags and points to check; symptoms with
onset and intensity; current treatments; allergies; relevant history; lifestyle; pregnancy;
free text. French first, English beside (``content["translations"]["en"]``).
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.services.preconsultation import questionnaires, red_flags

BUILDER_ID = "structured_summary"
BUILDER_VERSION = 1
BUILDER_LABEL = "résumé structuré (sans modèle)"
MAX_QUOTE_CHARS = 500  # a sentence stays under the review's 600-character limit

# Section keys in reading order, with their titles.
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("reason", "Motif de consultation", "Reason for the visit"),
    ("flags", "Alertes et points à vérifier", "Red flags and points to check"),
    ("symptoms", "Symptômes", "Symptoms"),
    ("treatments", "Traitements en cours", "Current treatments"),
    ("allergies", "Allergies", "Allergies"),
    ("history", "Antécédents", "Relevant history"),
    ("lifestyle", "Habitudes de vie", "Lifestyle"),
    ("pregnancy", "Grossesse", "Pregnancy"),
    ("free_text", "Texte libre du patient", "Patient's free text"),
)

# The bundled questionnaires' answers: their section and a short label (fr, en). A linkId
# not listed is placed by the words of its linkId, then as symptoms (choices) or free text.
KNOWN: dict[str, tuple[str, str, str]] = {
    "motif": ("reason", "Motif", "Reason"),
    "medicaments": ("reason", "Renouvellement demandé", "Renewal requested"),
    "vaccins": ("reason", "Vaccin(s) prévu(s)", "Planned vaccine(s)"),
    "vaccin-autre": ("reason", "Autre vaccin", "Other vaccine"),
    "symptomes": ("symptoms", "Symptômes", "Symptoms"),
    "debut": ("symptoms", "Début", "Onset"),
    "intensite": ("symptoms", "Intensité", "Intensity"),
    "temperature": ("symptoms", "Température maximale", "Highest temperature"),
    "douleur-thoracique-signes": (
        "symptoms",
        "Douleur thoracique accompagnée de",
        "Chest pain with",
    ),
    "debut-brutal": ("symptoms", "Début brutal", "Sudden onset"),
    "symptomes-details": ("symptoms", "Description", "Description"),
    "symptomes-alerte": ("symptoms", "Signes récents", "Recent signs"),
    "moral": ("symptoms", "Moral", "Mood"),
    "idees-suicidaires": ("symptoms", "Idées de se faire du mal", "Thoughts of self-harm"),
    "fievre-aujourdhui": ("symptoms", "Fièvre ou infection ce jour", "Fever or infection today"),
    "changement-sante": ("symptoms", "Santé changée", "Health changed"),
    "changement-detail": ("symptoms", "Changement", "Change"),
    "effets-indesirables": ("treatments", "Effets indésirables", "Side effects"),
    "effets-detail": ("treatments", "Effets décrits", "Effects described"),
    "tension-mesuree": ("symptoms", "Tension mesurée", "Blood pressure measured"),
    "tension-systolique": ("symptoms", "Tension systolique", "Systolic pressure"),
    "tension-diastolique": ("symptoms", "Tension diastolique", "Diastolic pressure"),
    "traitements-en-cours": ("treatments", "Médicaments en cours", "Current medicines"),
    "traitements-liste": ("treatments", "Lesquels", "Which"),
    "observance": ("treatments", "Prise du traitement", "Adherence"),
    "anticoagulant": ("treatments", "Anticoagulant", "Anticoagulant"),
    "anticoagulants": ("treatments", "Anticoagulant", "Anticoagulant"),
    "allergies": ("allergies", "Allergies", "Allergies"),
    "allergies-liste": ("allergies", "Lesquelles", "Which"),
    "allergie-grave": ("allergies", "Allergie grave connue", "Known severe allergy"),
    "antecedents": ("history", "Maladies connues", "Known conditions"),
    "antecedents-autres": ("history", "Autres antécédents", "Other history"),
    "reaction-grave": ("history", "Réaction grave à un vaccin", "Severe vaccine reaction"),
    "reaction-detail": ("history", "Réaction décrite", "Reaction described"),
    "immunodepression": ("history", "Immunodépression", "Immunosuppression"),
    "tabac": ("lifestyle", "Tabac", "Smoking"),
    "tabac-quantite": ("lifestyle", "Cigarettes par jour", "Cigarettes a day"),
    "alcool": ("lifestyle", "Alcool", "Alcohol"),
    "grossesse": ("pregnancy", "Grossesse possible", "Possible pregnancy"),
    "saignement-abondant": ("pregnancy", "Saignement abondant", "Heavy bleeding"),
    "grossesse-signes": ("pregnancy", "Signes", "Signs"),
    "autres-informations": ("free_text", "À ajouter pour le médecin", "For the physician"),
}

# Words of a linkId that place an unknown question (first match wins).
PLACED_BY_WORDS: tuple[tuple[str, str], ...] = (
    ("motif", "reason"),
    ("allerg", "allergies"),
    ("grossesse", "pregnancy"),
    ("traitement", "treatments"),
    ("medic", "treatments"),
    ("antecedent", "history"),
    ("tabac", "lifestyle"),
    ("alcool", "lifestyle"),
    ("sport", "lifestyle"),
    ("symptom", "symptoms"),
)

# Lines that read together: onset and intensity go on the symptoms line.
SYMPTOM_DETAILS = ("debut", "intensite")


@dataclass(frozen=True)
class Line:
    """One line of the summary in both languages, with the answers it rests on."""

    fr: str
    en: str
    sources: tuple[str, ...]
    kind: str = "answer"  # answer | urgence | à vérifier


@dataclass
class Section:
    key: str
    title_fr: str
    title_en: str
    lines: list[Line] = field(default_factory=list)


def quote(text: str) -> str:
    """The patient's words between « », on one line; their own « » become “ ” so a quote can
    never be closed from inside an answer. Very long text is cut (the full answer is beside)."""
    words = " ".join(str(text).split()).replace("«", "“").replace("»", "”")
    if len(words) > MAX_QUOTE_CHARS:
        words = words[:MAX_QUOTE_CHARS].rstrip() + " […]"
    return f"« {words} »"


def section_of(form: questionnaires.Form, link_id: str) -> str:
    if link_id in KNOWN:
        return KNOWN[link_id][0]
    folded = link_id.casefold()
    for words, key in PLACED_BY_WORDS:
        if words in folded:
            return key
    return "free_text" if form.questions[link_id].free_text else "symptoms"


def _label(form: questionnaires.Form, link_id: str, language: str) -> str:
    known = KNOWN.get(link_id)
    if known is not None:
        return known[1] if language == "fr" else known[2]
    return form.questions[link_id].text.rstrip(" ?:").strip()


def _value(form: questionnaires.Form, link_id: str, value: Any, language: str) -> str:
    question = form.questions[link_id]
    if question.free_text:
        return quote(str(value))
    shown = questionnaires.display_answer(question, value, language)
    if link_id == "intensite" and isinstance(value, int | float) and not isinstance(value, bool):
        return f"{shown}/10"
    return shown


def _pair(forms: Mapping[str, questionnaires.Form], link_id: str, value: Any) -> tuple[str, str]:
    """``label : value`` in French and English (French punctuation in French)."""
    fr = forms["fr"]
    en = forms["en"] if link_id in forms["en"].questions else fr
    return (
        f"{_label(fr, link_id, 'fr')} : {_value(fr, link_id, value, 'fr')}",
        f"{_label(en, link_id, 'en')}: {_value(en, link_id, value, 'en')}",
    )


def _flag_sources(
    flag: Mapping[str, Any], rules: Mapping[str, red_flags.Rule], answered: Sequence[str]
) -> tuple[str, ...]:
    """The answers behind a flag: where its words were written, then the answers its rule
    tests (only those the patient gave)."""
    cited = [str(e.get("field", "")) for e in flag.get("evidence", []) or []]
    rule = rules.get(str(flag.get("rule", "")))
    if rule is not None:
        cited += sorted(red_flags.referenced_questions(rule.when))
    return tuple(link for link in dict.fromkeys(cited) if link in answered)


def _flag_line(
    flag: Mapping[str, Any], rules: Mapping[str, red_flags.Rule], answered: Sequence[str]
) -> Line:
    severity = str(flag.get("severity", ""))
    staff = flag.get("staff") or {}
    words = [quote(str(e.get("text", ""))) for e in flag.get("evidence", []) or []]
    said = f" — {', '.join(dict.fromkeys(words))}" if words else ""
    head_fr, head_en = ("URGENCE", "URGENT") if severity == "urgence" else ("À vérifier", "Check")
    return Line(
        f"{head_fr} : {staff.get('fr', '')}{said}",
        f"{head_en}: {staff.get('en', staff.get('fr', ''))}{said}",
        _flag_sources(flag, rules, answered),
        kind=severity,
    )


def build(
    form_fr: questionnaires.Form,
    answers: Mapping[str, Any],
    flags: Sequence[Mapping[str, Any]],
    form_en: questionnaires.Form | None = None,
) -> list[Section]:
    """The summary's sections (empty ones left out) from the enabled answers and the flags
    stored at submit (``Flag.as_json``), urgent flags first."""
    forms = {"fr": form_fr, "en": form_en or form_fr}
    enabled = questionnaires.enabled_answers(form_fr, dict(answers))
    given = {k: v for k, v in enabled.items() if v is not None and v != "" and v != []}
    sections = {key: Section(key, fr, en) for key, fr, en in SECTIONS}
    rules = {
        rule.id: rule for rule, _ in red_flags.rules_for(red_flags.rulesets().get(form_fr.slug))
    }
    ordered = sorted(flags, key=lambda f: f.get("severity") != "urgence")
    sections["flags"].lines += [_flag_line(f, rules, list(given)) for f in ordered]

    placed: set[str] = set()
    if "symptomes" in given:  # symptoms with their onset and intensity, on one line
        parts = [link for link in ("symptomes", *SYMPTOM_DETAILS) if link in given]
        pairs = [_pair(forms, link, given[link]) for link in parts]
        sections["symptoms"].lines.append(
            Line("; ".join(p[0] for p in pairs), "; ".join(p[1] for p in pairs), tuple(parts))
        )
        placed.update(parts)
    for link_id, value in given.items():
        if link_id in placed or link_id not in form_fr.questions:
            continue
        fr, en = _pair(forms, link_id, value)
        sections[section_of(form_fr, link_id)].lines.append(Line(fr, en, (link_id,)))
    return [s for s in sections.values() if s.lines]


def _sections_json(sections: Sequence[Section], language: str) -> list[dict[str, Any]]:
    return [
        {
            "title": s.title_fr if language == "fr" else s.title_en,
            "key": s.key,
            "sentences": [
                {
                    "text": line.fr if language == "fr" else line.en,
                    "sources": list(line.sources),
                    "kind": line.kind,
                }
                for line in s.lines
            ],
        }
        for s in sections
    ]


def as_content(sections: Sequence[Section]) -> dict[str, Any]:
    """The document content: French sections (what the review page shows and edits), the
    English ones beside, and the builder that made them."""
    return {
        "sections": _sections_json(sections, "fr"),
        "translations": {"en": {"sections": _sections_json(sections, "en")}},
        "builder": f"{BUILDER_ID}@{BUILDER_VERSION}",
    }


def as_text(content: Mapping[str, Any]) -> str:
    """Sections as plain text, in the shape the record keeps (same as a generated summary)."""
    parts: list[str] = []
    for section in content.get("sections", []):
        parts.append(str(section.get("title", "")))
        parts += [f"- {s.get('text', '')}" for s in section.get("sentences", [])]
        parts.append("")
    return "\n".join(parts).strip()


def builder_hash() -> str:
    """What identifies this builder in the provenance (like a prompt's hash): its tables."""
    data = json.dumps([BUILDER_VERSION, SECTIONS, KNOWN, PLACED_BY_WORDS], ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()
