"""What one message of the secretary asks: the intent and its entities (patients named,
practitioner, birth date, phone, duration, reason). Plain rules over the French words."""

import re
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from agents.rules.names import fold
from agents.rules.when import MONTHS
from app.services.core import shorthand

INTENTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "emergency",
        re.compile(
            r"douleur (?:dans|a|de) la poitrine|douleur thoracique|mal a respirer|"
            r"respire (?:tres )?mal|"
            r"ne respire plus|levres bleues|inconscient|perte de connaissance|convulsion|avc|"
            r"paralys|saigne abondamment|hemorragie|etouffe|malaise grave|idees suicidaires|"
            # the signs of a stroke (face, arm, speech), however they are put
            r"bouche (?:de travers|tordue|deformee)|visage (?:de travers|deforme|tombe|fige)|"
            r"(?:n arrive|ne peut|n a) plus (?:a |la force de )?(?:lever|bouger|soulever) "
            r"(?:le|son|un|les|ses) bras|"
            r"(?:n arrive plus|ne peut plus|du mal) a parler|parle (?:bizarrement|de travers)|"
            r"trouble (?:brutal |soudain )?de la parole"
        ),
    ),
    (
        "medical",
        re.compile(
            r"paracetamol|ibuprofene|doliprane|advil|antibiotique|quel medicament|posologie|"
            r"\bdose\b|je lui dis de (?:donner|prendre)|que doit[- ]il prendre|"
            r"que doit[- ]elle prendre|"
            r"est ce grave|c est grave"
        ),
    ),
    (
        "prescription",
        re.compile(
            r"(?:renouvel\w*|refai\w*|prolong\w*) (?:\w+ ){0,3}ordonnance|"
            r"ordonnance (?:\w+ ){0,3}renouvel|arret de travail|certificat"
        ),
    ),
    (
        "unsupported",
        re.compile(
            r"\b(?:ecri\w*|redige\w*|prepare\w*|fai\w*) (?:\w+ ){0,2}(?:courrier|lettre|"
            r"compte rendu|mail|e mail|sms)|\benvoie\w* (?:\w+ ){0,2}(?:sms|mail|e mail|texto)|"
            r"\bfactur\w*|\bfeuille de soins|\bresultats? d (?:analyse|examen)"
        ),
    ),
    ("cancel", re.compile(r"\bannul\w*|\bsupprime\w*")),
    ("waiting", re.compile(r"liste d attente")),
    (
        "move",
        re.compile(
            r"\b(?:deplac\w*|decal\w*|avancer?|avance son|reporte\w*|repouss\w*|"
            r"ne (?:peut|pourra|pourrait) (?:plus|pas) venir|"
            r"change\w* (?:son|le) rendez|passe (?:m|mme|monsieur|madame|le|la)\b)"
        ),
    ),
    ("preconsult", re.compile(r"pre ?consultation|questionnaire")),
    (
        "register",
        re.compile(
            r"\bcree\w* (?:la |une )?fiche|nouvel(?:le)? (?:fiche|patient\w*)|"
            r"nouveau patient|enregistr\w*|inscri\w* (?:le |la )?(?:nouveau|nouvelle)"
        ),
    ),
    (
        "next",
        re.compile(
            r"prochain rendez|quand (?:est|a)\w*|a t (?:elle|il) (?:un|des|deja un) rendez|"
            r"est ce qu (?:elle|il) a (?:un|des) rendez|a quelle (?:date|heure) (?:est|a)|"
            r"(?:ses|les) (?:prochains )?rendez vous de|"
            r"\ba (?:t (?:il|elle) )?(?:deja )?(?:un|des) rendez vous (?:de )?prevus?|"
            r"est ce qu[e ].{0,60}\ba (?:deja )?(?:un|des) rendez vous"
        ),
    ),
    ("agenda", re.compile(r"\bqui (?:a|est|vient|passe)\b|\bagenda du\b|planning")),
    (
        "slots",
        re.compile(
            r"creneaux libres|disponibilites?|\bdispos?\b|quels creneaux|de la place|"
            r"une place libre|"
            r"y a t il (?:un|des) creneaux?"
        ),
    ),
    (
        "book",
        re.compile(
            r"rendez vous|\brdv\b|\breserv\w*|\bmets?\b|\bcreneau|\bvoir le\b|"
            r"\bvoir la\b|doi\w+ voir|avec le (?:dr|docteur)|avec la (?:dr|docteur|"
            r"pediatre)|\bvaccin|le plus tot possible|au plus tot|des que possible"
        ),
    ),
)
KNOWLEDGE = re.compile(
    r"\bcabinet\b|horaire|ouvert|ferme|tarif|cout\w*|prix|combien|a jeun|parking|acces|"
    r"adresse|apporter|carte vitale|tiers payant|mutuelle|teleconsult|paiement|payer|cheque|"
    r"prise de sang|laboratoire|vaccin\w* (?:dispo|en stock)|consigne"
)
FIRST_ORDINALS = {
    "premier": 0,
    "premiere": 0,
    "1er": 0,
    "deuxieme": 1,
    "second": 1,
    "seconde": 1,
    "2e": 1,
    "troisieme": 2,
    "3e": 2,
    "dernier": -1,
    "derniere": -1,
}
TITLE = re.compile(
    r"\b(?P<t>M\.|Mr\.?|Mme|Mlle|Madame|Monsieur|Mademoiselle|le petit|la petite|"
    r"les jumeaux|les jumelles|les enfants)\s+",
    re.I,
)
DOCTOR = re.compile(
    r"\b(?:Dr\.?|Docteur|docteur|Pr\.?)\s+(?P<names>[A-ZÀ-Ý][\w'-]*(?:\s+[A-ZÀ-Ý][\w'-]*)?)"
)
CAPITAL = re.compile(r"\b[A-ZÀ-Ý][a-zà-ÿ'-]+(?:-[A-ZÀ-Ý][a-zà-ÿ'-]+)?\b|\b[A-ZÀ-Ý]{4,}\b")
NOT_NAMES = frozenset(
    fold(w)
    for w in [
        "Bonjour",
        "Bonsoir",
        "Il",
        "Elle",
        "Ils",
        "Elles",
        "Le",
        "La",
        "Les",
        "Un",
        "Une",
        "Des",
        "Mets",
        "Mettez",
        "Réserve",
        "Réservez",
        "Annule",
        "Annulez",
        "Déplace",
        "Décale",
        "Passe",
        "Trouve",
        "Trouvez",
        "Inscris",
        "Crée",
        "Créez",
        "Rendez",
        "Nouveau",
        "Nouvelle",
        "Qui",
        "Quand",
        "Combien",
        "Et",
        "Oui",
        "Non",
        "Parfait",
        "Celle",
        "Celui",
        "C'est",
        "Liste",
        "Merci",
        "Dr",
        "Docteur",
        "Madame",
        "Monsieur",
        "Mme",
        "Mlle",
        "Pour",
        "Avec",
        "Son",
        "Sa",
        "Ses",
        "Mon",
        "Ma",
        "Je",
        "Tu",
        "On",
        "Nous",
        "Vous",
        "Peux",
        "Pouvez",
        "Peut",
        "Est",
        "Au",
        "Aux",
        "Du",
        "De",
        "Dans",
        "Sur",
        "Ok",
        "Okay",
        "Vas",
        "Vas-y",
        "Attends",
        "Finalement",
        "Plutôt",
        "Envoie",
        "Envoyez",
        "Donne",
        "Cherche",
        "Quel",
        "Quelle",
        "Quels",
        "Quelles",
        "Est-ce",
        "Y",
        "Il-y",
        "Ah",
        "Bien",
        "Alors",
        "Sinon",
        "Si",
        "Pas",
        "Rappelle",
        "Note",
        "Ajoute",
        "Enregistre",
        "Fiche",
        "Patient",
        "Patiente",
        "Docteure",
        "Ce",
        "Cet",
        "Cette",
        "Elle-même",
        "Lui",
        "Leur",
        "Maman",
        "Papa",
        "Mère",
        "Père",
        "Fils",
        "Fille",
        "Frère",
        "Sœur",
        "Mari",
        "Femme",
        "Jumeaux",
        "Jumelles",
        "D'accord",
        "Pédiatre",
        "Liste",
        "Mets-le",
        "Mets-la",
        "Mets-les",
        "Demain",
        "Aujourd'hui",
        "Matin",
        "Après-midi",
        "Semaine",
        "Mois",
    ]
) | frozenset(("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche", *MONTHS))
KEEP = re.compile(
    r"(?:\b(?:elle|il)\s+)?\b(?:garde|conserve|maintient|laisse)\w*\s+(?:bien\s+)?"
    r"(?:celui|celle|le rendez-vous|son rendez-vous|l'autre)\b[^,.;]*",
    re.I,
)
PHONE = re.compile(r"(?:\+33\s?|0)[1-9](?:[\s.-]?\d{2}){4}")
BIRTH = re.compile(
    rf"\bnee?s?\s+(?:le\s+)?(?:(?P<d>\d{{1,2}})(?:er)?\s+(?P<m>{'|'.join(MONTHS)})\s+(?P<y>\d{{4}})"
    rf"|(?P<d2>\d{{1,2}})/(?P<m2>\d{{1,2}})/(?P<y2>\d{{4}})|en\s+(?P<year>\d{{4}}))"
)
DURATION = re.compile(
    r"\b(?:prevoir|pendant|duree(?: de)?|compter|faut)\s+(?:\w+\s+){0,2}?"
    r"(?P<n>\d{1,3})\s*(?:minutes|min|mn)\b|\b(?P<n2>\d{1,3})\s*(?:minutes|min)\b"
)
ANY_DOCTOR = re.compile(
    r"n importe quel (?:medecin|docteur|praticien)|peu importe (?:le|quel) "
    r"(?:medecin|docteur|praticien)|quel que soit le (?:medecin|docteur)|"
    r"premier (?:medecin|docteur) (?:dispo|libre)"
)
SPECIALTIES = {
    "pediatre": "pediatr",
    "gyneco": "gyneco",
    "gynecologue": "gyneco",
    "sage femme": "sage",
    "infirmier": "infirm",
    "infirmiere": "infirm",
}


# Lower-case words that are never a name typed in lower case after a title ("mme durand").
_NEVER_NAMES = (
    "a",
    "au",
    "aux",
    "avec",
    "chez",
    "de",
    "des",
    "du",
    "d",
    "et",
    "ou",
    "en",
    "pour",
    "par",
    "sur",
    "sous",
    "dans",
    "il",
    "elle",
    "ils",
    "elles",
    "le",
    "la",
    "les",
    "l",
    "un",
    "une",
    "son",
    "sa",
    "ses",
    "leur",
    "qui",
    "que",
    "qu",
    "est",
    "sont",
    "ai",
    "veut",
    "voudrait",
    "souhaite",
    "doit",
    "peut",
    "pourrait",
    "ne",
    "n",
    "pas",
    "plus",
    "car",
    "mais",
    "si",
    "demain",
    "aujourd",
    "hui",
    "matin",
    "apres",
    "midi",
    "soir",
    "semaine",
    "prochain",
    "prochaine",
    "ce",
    "cet",
    "cette",
    "vient",
    "viendra",
    "appelle",
    "rappelle",
    "tel",
    "telephone",
    "nee",
    "rdv",
    "rendez",
    "vous",
    "dr",
    "docteur",
    "annule",
    "annuler",
    "deplace",
    "deplacer",
    "decale",
    "mets",
    "mettre",
    "reserve",
    "liste",
    "attente",
    "fiche",
    "creneau",
    "urgent",
    "merci",
    "svp",
    "stp",
    "jusqu",
    "partir",
    "avant",
)
STOP_WORDS = frozenset(_NEVER_NAMES) | NOT_NAMES
RELATIVE = re.compile(
    r"\b(?:son|sa|leur)\s+(?P<rel>fils|fille|enfant|bébé|bebe|petit-fils|petite-fille|mari|"
    r"femme|épouse|epouse|époux|epoux|père|pere|mère|mere|frère|frere|sœur|soeur)\s+"
    r"(?P<first>[A-ZÀ-Ý][\w'-]+)(?:\s+(?P<last>[A-ZÀ-Ý][\w'-]+))?"
)
MALE_RELATIVES = frozenset({"fils", "petit-fils", "mari", "epoux", "époux", "pere", "père",
                            "frere", "frère"})  # fmt: skip
DOCTOR_LOWER = re.compile(r"\b(?:dr\.?|docteur|docteure)\s+(?P<name>[a-zà-ÿ][\w'-]+)")


def expand(text: str) -> str:
    """The message with front-desk shorthand written out ("rdv dem aprem pr mme X"; lower-case
    words only: "Pr" stays a title)."""
    return shorthand.expand(text)


def _lower_names(rest: str) -> list[str]:
    """Names typed in lower case right after a title: up to three words, up to a word that
    cannot be a name."""
    group: list[str] = []
    for raw in rest.split():
        word = raw.strip('.,;:!?()«»"')
        if not word or not word.replace("-", "").isalpha() or fold(word) in STOP_WORDS:
            break
        group.append(word)
        if raw[-1] in ".,;:!?" or len(group) == 3:
            break
    return group


@dataclass
class PatientRef:
    """A patient as the secretary names them."""

    names: list[str]  # the name words, as typed
    sex: str | None = None  # F | M from the title


@dataclass
class Request:
    """One message, understood."""

    text: str
    folded: str
    timeless: str = ""  # the words without birth dates and phone numbers (read for times)
    intent: str | None = None
    patients: list[PatientRef] = field(default_factory=list)
    doctor: list[str] | None = None  # the practitioner's name words
    specialty: str | None = None
    any_doctor: bool = False
    birth_date: date | None = None
    birth_year: int | None = None
    phone: str | None = None
    sex: str | None = None
    duration: int | None = None
    ordinal: int | None = None  # "la première", "le deuxième"
    reason: str = ""
    question: bool = False
    wants_choice: bool = False  # "voudrait un rendez-vous": show the slots, do not book yet
    decline: bool = False  # "non", "laisse tomber"
    accept: bool = False  # "oui", "vas-y", "parfait"


def intent_of(folded: str) -> str | None:
    for name, pattern in INTENTS:
        if pattern.search(folded):
            return name
    return None


def _patients(text: str) -> list[PatientRef]:
    cleaned = DOCTOR_LOWER.sub(" ", DOCTOR.sub(" ", text))
    refs: list[PatientRef] = []
    relative = RELATIVE.search(cleaned)
    if relative:  # "Mme Lemoine appelle pour son fils Tom": the appointment is Tom's
        surname = relative["last"]
        if surname is None:
            caller = TITLE.search(cleaned[: relative.start()])
            after = cleaned[caller.end() :].split() if caller else []
            surname = after[0].strip('.,;:!?()«»"') if after else None
        names = [relative["first"], *([surname] if surname else [])]
        rel = fold(relative["rel"]).replace(" ", "-")
        kin: str | None = "M" if rel in MALE_RELATIVES else "F"
        if rel in ("enfant", "bebe"):
            kin = None
        return [PatientRef(names, kin)]
    for m in TITLE.finditer(cleaned):
        title = fold(m["t"])
        sex = (
            "F"
            if title in ("mme", "mlle", "madame", "mademoiselle", "la petite")
            else "M"
            if title in ("m.", "mr", "mr.", "monsieur", "le petit")
            else None
        )
        rest = cleaned[m.end() :]
        first_word = rest.split()[0].strip('.,;:!?()«»"') if rest.split() else ""
        if first_word[:1].islower():  # "mme durand", "m. gerard blanc": shorthand
            lower = _lower_names(rest)
            if lower:
                refs.append(PatientRef(lower, sex))
            continue
        group: list[str] = []
        for raw in rest.split():
            word = raw.strip('.,;:!?()«»"')
            if word == "et" and group:
                group.append(word)
                continue
            if not word or not CAPITAL.fullmatch(word) or fold(word) in NOT_NAMES:
                break
            group.append(word)
            if raw[-1] in ".,;:!?":
                break
        if group and group[-1] == "et":
            group.pop()
        if "et" in group:  # "Lucas et Jules Fontaine": two children, one surname
            cut = group.index("et")
            left, right = group[:cut], group[cut + 1 :]
            refs += [PatientRef([n, right[-1]], sex) for n in left]
            refs.append(PatientRef(right, sex))
        elif group:
            refs.append(PatientRef(group, sex))
    if refs:
        return refs
    run: list[str] = []
    runs: list[list[str]] = []
    for m in re.finditer(r"\S+", cleaned):
        word = m.group(0).strip('.,;:!?()«»"')
        if CAPITAL.fullmatch(word) and fold(word) not in NOT_NAMES:
            run.append(word)
        else:
            if run:
                runs.append(run)
            run = []
    if run:
        runs.append(run)
    runs = [r for r in runs if r]
    if not runs:
        return []
    best = max(runs, key=len)
    return [PatientRef(best)]


def _doctor(text: str) -> list[str] | None:
    """The practitioner asked for: the one after "avec" or "chez" when several are named
    ("le Dr Martin ne sera pas là ; passe-la avec le Dr Bernard"), else the last one."""
    found = list(DOCTOR.finditer(text))
    if not found:
        lower = [
            m["name"] for m in DOCTOR_LOWER.finditer(text) if fold(m["name"]) not in STOP_WORDS
        ]
        return [lower[-1]] if lower else None
    wanted = [
        m
        for m in found
        if re.search(
            r"\b(?:avec|chez|pour)\s+(?:le|la)?\s*$", text[max(0, m.start() - 12) : m.start()]
        )
    ]
    return (wanted or found)[-1]["names"].split()


def _birth(folded: str) -> tuple[date | None, int | None]:
    m = BIRTH.search(folded)
    if not m:
        return None, None
    try:
        if m["d"]:
            return date(int(m["y"]), MONTHS.index(m["m"]) + 1, int(m["d"])), None
        if m["d2"]:
            return date(int(m["y2"]), int(m["m2"]), int(m["d2"])), None
    except ValueError:
        return None, None
    return None, int(m["year"])


def _reason(text: str, intent: str | None) -> str:
    """Words that say why: a clause after a comma, a colon or "pour" that is not the request."""
    if intent == "cancel":
        parts = re.split(r"[,;:]|\bcar\b|\bparce qu", text)
        for part in parts[1:]:
            words = fold(part)
            if words and not intent_of(words) and not re.search(r"s il (?:te|vous) plait", words):
                return part.strip(" .")
    m = re.search(r"\b(?:pour (?:une?|son|sa)|vient pour|doit faire) (.+?)(?= avec|[,.;]|$)", text)
    if m is None:
        m = re.search(r"\brendez-vous (?:de|d'|pour) (?!demain|aujourd)([a-zà-ÿ]{5,})", text)
        if m and fold(m.group(1)) in NOT_NAMES:
            m = None
    if m and intent == "book":
        return m.group(1).strip()
    return ""


@lru_cache(maxsize=512)
def understand(text: str) -> Request:
    """The intent and entities of one message (cached: the model rereads the whole
    conversation at each call; callers never change what it returns)."""
    text = expand(text)
    folded = fold(text)
    request = Request(text=text, folded=folded, intent=intent_of(folded))
    request.question = "?" in text or bool(
        re.search(
            r"\b(?:demande|voudrait savoir|aimerait savoir) (?:si|s il|s ils|combien|quand|ou|"
            r"comment|quel)",
            folded,
        )
    )
    if request.intent is None and KNOWLEDGE.search(folded) and request.question:
        request.intent = "knowledge"
    # "elle garde celui de mercredi": a day named only to be left alone
    request.timeless = KEEP.sub(" ", PHONE.sub(" ", text))
    birth = BIRTH.search(fold(request.timeless))
    if birth:
        request.timeless = fold(request.timeless)
        request.timeless = request.timeless[: birth.start()] + request.timeless[birth.end() :]
    request.patients = _patients(text)
    request.doctor = _doctor(text)
    for word, stem in SPECIALTIES.items():
        if re.search(rf"\b{word}\b", folded):
            request.specialty = stem
    request.any_doctor = bool(ANY_DOCTOR.search(folded))
    request.birth_date, request.birth_year = _birth(folded)
    phone = PHONE.search(text)
    request.phone = phone.group(0) if phone else None
    if re.search(r"\b(?:elle|patiente|nouvelle|celle)\b", folded):
        request.sex = "F"
    elif re.search(r"\b(?:il|patient|nouveau|celui)\b", folded):
        request.sex = "M"
    duration = DURATION.search(folded)
    if duration and not re.search(r"depuis \w+ minutes", folded):
        request.duration = int(duration["n"] or duration["n2"])
    for word, index in FIRST_ORDINALS.items():
        if re.search(rf"\b(?:le|la|au|du) {word}\b", folded) and "premier mercredi" not in folded:
            request.ordinal = index
            break
    request.reason = _reason(text, request.intent)
    request.wants_choice = bool(
        re.search(r"\b(?:voudrai[st]?|souhaiterai[st]?|aimerai[st]?) un rendez", folded)
    )
    request.decline = bool(
        re.match(r"(?:non|laisse tomber|annule tout|rien|pas la peine)\b", folded)
    ) and not re.search(r"\bplutot\b", folded)
    request.accept = bool(
        re.match(
            r"(?:oui|ok|d accord|parfait|vas y|c est bon|tres bien|"
            r"go|valide|entendu)\b",
            folded,
        )
    )
    return request
