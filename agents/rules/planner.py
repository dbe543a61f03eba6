"""The next step of the rules assistant: a tool call or an answer, decided from the task
(``frame``) and the tool results so far. Patients and practitioners are only ever those the
tools returned; when something is missing or ambiguous it asks one question."""

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from agents.rules import replies
from agents.rules.frame import Task, merge
from agents.rules.names import TITLES, digits, fold, name_score, words
from agents.rules.reading import ToolEvent
from agents.rules.understanding import INTENTS, PatientRef
from agents.rules.when import When, days, read, split_move

Item = dict[str, Any]
HORIZON_DAYS = 62  # list_appointments takes two months at most
NOON_HOUR = 13  # the scheduling services' morning ends at 13:00
ACTIONABLE = re.compile(
    r"\b(?:plutot|pas avant|pas apres|apres|avant|vers|autre|plus tard|plus tot|prefer\w*)\b"
)
NO_KNOWLEDGE_ANSWER = "Je ne trouve pas cette information dans les documents du cabinet."
DOUBT = "Les documents du cabinet ne répondent peut-être pas exactement à cette question."
MAX_EVENTS = 14  # a task that needs more tool calls than this is not going anywhere
BOOK_WORDS = dict(INTENTS)["book"]
GREETING = re.compile(r"(?:bonjour|bonsoir|salut|merci)\b")


@dataclass
class Step:
    """What the model says now: tool calls, or an answer (``open``: it waits for a choice)."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    text: str = ""
    open: bool = False
    sure: bool = True  # False: the request is not one the rules understand (hybrid mode)
    # Not sure, but worth saying if the LLM fails (hybrid mode): a doubtful passage.
    fallback: bool = False


def call(name: str, **args: Any) -> Step:
    return Step(calls=[(name, {k: v for k, v in args.items() if v is not None})])


def say(text: str, *, open: bool = False) -> Step:
    return Step(text=text, open=open)


def _quoted(passage: Item, limit: int = 600) -> str:
    """A knowledge passage as the reply quotes it: "(document — section) : « text » Source :
    link." (the text cut at ``limit`` characters)."""
    text = " ".join(str(passage.get("text", "")).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    where = " — ".join(
        x for x in (str(passage.get("title", "")), str(passage.get("section", ""))) if x
    )
    return f"({where}) : « {text} » Source : {passage.get('source', where)}."


class Need(Exception):
    """The plan cannot go on without this step first (a tool call or a question)."""

    def __init__(self, step: Step) -> None:
        super().__init__()
        self.step = step


def _local_time(item: Item) -> time:
    found = replies.moment(str(item.get("start")))
    return found.time() if found else time(0)


def _same(a: Any, b: Any) -> bool:
    return fold(str(a)) == fold(str(b))


class Planner:
    """Decides the next step of one task."""

    def __init__(self, task: Task, now: datetime) -> None:
        self.task = task
        self.now = now
        self.today = now.date()
        self.when: When = task.when(now)
        self.slot_note = ""  # why a slot search found nothing, as the tool explains it

    # -- facts from the tools ------------------------------------------------------------
    def _event(self, name: str, args: dict[str, Any], *, chain: bool = False) -> ToolEvent | None:
        tasks = self.task.chain() if chain else [self.task]
        for task in tasks:
            for event in reversed(task.done(name)):
                if all(_same(event.args.get(k), v) for k, v in args.items()):
                    return event
        return None

    def _need(self, name: str, *, chain: bool = False, **args: Any) -> ToolEvent:
        """The result of this call, or the call itself as the next step."""
        args = {k: v for k, v in args.items() if v is not None}
        event = self._event(name, args, chain=chain)
        if event is None:
            raise Need(call(name, **args))
        return event

    def practitioners(self) -> list[Item]:
        return self._need("list_practitioners", chain=True).items

    def practitioner_name(self, practitioner_id: Any) -> str:
        for item in self.practitioners():
            if item.get("id") == practitioner_id:
                return str(item.get("name"))
        return "le praticien"

    # -- who -----------------------------------------------------------------------------
    def practitioner(self, *, default_single: bool = True) -> Item | None:
        """The practitioner the secretary named (None: any of them)."""
        if self.task.last("any_doctor"):
            return None
        every = self.practitioners()
        named = self.task.last("doctor")
        if isinstance(named, list):
            wanted = [w for w in words(" ".join(named)) if w not in TITLES]
            scored = [(name_score(wanted, str(p.get("name", ""))), p) for p in every]
            found = [p for s, p in scored if s >= 0]
            best = max((s for s, _ in scored), default=-1)
            found = [p for s, p in scored if s == best and s >= 0] or found
            if len(found) == 1:
                return found[0]
            if not found:
                names = ", ".join(str(p.get("name")) for p in every)
                raise Need(
                    say(
                        f"Je ne trouve pas le Dr {' '.join(named)} parmi les praticiens du "
                        f"cabinet ({names}). Lequel voulez-vous ?",
                        open=True,
                    )
                )
            names = " ou ".join(str(p.get("name")) for p in found)
            raise Need(say(f"Plusieurs praticiens correspondent : {names} ?", open=True))
        specialty = self.task.last("specialty")
        if isinstance(specialty, str):
            found = [p for p in every if specialty in fold(str(p.get("specialty", "")))]
            if len(found) == 1:
                return found[0]
        if default_single and len(every) == 1:
            return every[0]
        return None

    def _candidates(self, ref: PatientRef) -> list[Item]:
        query = " ".join(ref.names)
        wanted = words(query)
        for task in self.task.chain():
            for event in reversed(task.done("register_patient")):
                if event.status == "ok" and event.items:
                    name = str(event.items[0].get("name", ""))
                    if name_score(wanted, name) >= 0:
                        return event.items[:1]
        found = self._need("find_patients", chain=True, query=query).items
        for word in [] if found else sorted(ref.names, key=len, reverse=True)[:2]:
            if len(word) < 4:
                continue
            # a typo: the first letters of a name, then names close enough
            found = [
                p
                for p in self._need("find_patients", chain=True, query=fold(word)[:3]).items
                if name_score(wanted, str(p.get("name", ""))) >= 0
            ]
            if found:
                break
        return found

    def _narrow(self, found: list[Item]) -> list[Item]:
        born = self.task.last("birth_date")
        year = self.task.last("birth_year")
        phone = self.task.last("phone")
        narrowed = found
        if isinstance(born, date):
            narrowed = [p for p in narrowed if str(p.get("birth_date")) == born.isoformat()]
        elif isinstance(year, int):
            narrowed = [p for p in narrowed if str(p.get("birth_date", "")).startswith(str(year))]
        if isinstance(phone, str) and len(narrowed) > 1:
            same = [p for p in narrowed if digits(str(p.get("phone") or "")) == digits(phone)]
            narrowed = same or narrowed
        ordinal = self.task.latest.ordinal
        if len(narrowed) > 1 and ordinal is not None and -len(narrowed) <= ordinal < len(narrowed):
            narrowed = [narrowed[ordinal]]
        return narrowed

    def patient(self, index: int = 0) -> Item:
        """The one patient the task is about (asks when none or several match)."""
        refs = self.task.patients
        phone = self.task.last("phone")
        if not refs and isinstance(phone, str):  # named by a phone number alone
            by_phone = self._need("find_patients", chain=True, phone=phone).items
            if len(by_phone) == 1:
                return by_phone[0]
        if not refs:
            raise Need(say("Pour quel patient ? Donnez-moi son nom et son prénom.", open=True))
        ref = refs[min(index, len(refs) - 1)]
        found = self._candidates(ref)
        narrowed = self._narrow(found)
        if len(narrowed) == 1:
            return narrowed[0]
        name = " ".join(ref.names)
        if len(narrowed) > 1:
            options = " ou ".join(
                f"{p.get('name')} (né(e) le {replies.born(p)})" for p in narrowed[:4]
            )
            raise Need(
                say(
                    f"Plusieurs patients correspondent à « {name} » : {options} ? "
                    "Précisez la date de naissance.",
                    open=True,
                )
            )
        return self.unknown_patient(ref)

    def unknown_patient(self, ref: PatientRef) -> Item:
        """Nobody matches: register them when the secretary gave the details, else ask."""
        name = " ".join(ref.names)
        born = self.task.last("birth_date")
        if not isinstance(born, date) or len(ref.names) < 2:
            raise Need(
                say(
                    f"Je ne trouve aucun patient « {name} ». Si c'est un nouveau patient, "
                    "donnez-moi son nom, son prénom, sa date de naissance et son téléphone pour "
                    "créer sa fiche.",
                    open=True,
                )
            )
        raise Need(self.register_step(ref, born))

    def register_step(self, ref: PatientRef, born: date) -> Step:
        first, *rest = ref.names
        if len(ref.names) > 2 and ref.names[0].isupper():
            rest, first = ref.names[:1], " ".join(ref.names[1:])
        sex = ref.sex or self.task.last("sex") or "X"
        event = self._event("register_patient", {"birth_name": " ".join(rest), "first_name": first})
        if event is not None and event.status == "rejected":
            raise Need(say("D'accord, je ne crée pas la fiche.", open=False))
        if event is not None and event.status == "error":
            raise Need(say(f"La fiche n'a pas pu être créée : {event.text}", open=True))
        phone = self.task.last("phone")
        return call(
            "register_patient",
            birth_name=" ".join(rest),
            first_name=first,
            birth_date=born.isoformat(),
            sex=sex if sex in ("F", "M") else "X",
            phone=phone if isinstance(phone, str) else None,
        )

    # -- entry point ---------------------------------------------------------------------
    def decide(self) -> Step:
        intent = self.task.intent
        handlers = {
            "emergency": self.emergency,
            "medical": self.medical,
            "prescription": self.prescription,
            "unsupported": self.unsupported,
            "knowledge": self.knowledge,
            "register": self.register,
            "cancel": self.cancel,
            "move": self.move,
            "waiting": self.waiting,
            "next": self.next_appointments,
            "agenda": self.agenda,
            "preconsult": self.preconsult,
            "slots": self.book,
            "book": self.book,
        }
        if len(self.task.events) > MAX_EVENTS:
            return Step(
                text="Je n'arrive pas à mener cette demande à bien : faites-la depuis la page "
                "Agenda.",
                sure=False,
            )
        if len(self.task.requests) > 1 and self.task.latest.decline:
            return say("D'accord, je laisse cela de côté.")
        handler = handlers.get(intent or "")
        guessed = handler is None  # no intent recognised: a guess, or "I cannot"
        if handler is None:
            handler = self.knowledge if self.task.latest.question else self.not_understood
        try:
            step = handler()
        except Need as need:
            step = need.step
        if guessed and not GREETING.match(self.task.latest.folded):
            step.sure = False
        return step

    def not_understood(self) -> Step:
        if GREETING.match(self.task.latest.folded):
            return say("Bonjour ! " + replies.CAPABILITIES)
        return say(
            "Je ne sais pas faire cela. "
            + replies.CAPABILITIES
            + " Pour le reste, utilisez les pages Agenda, Patients et Courriers."
        )

    # -- answers without tools -----------------------------------------------------------
    def emergency(self) -> Step:
        return say(
            "Urgence vitale possible : qu'on appelle immédiatement le 15 (SAMU) ou le 112. "
            "Ce n'est pas un rendez-vous qui convient ; je ne prends pas de rendez-vous "
            "à la place de cet appel."
        )

    def medical(self) -> Step:
        return say(
            "Je ne peux pas donner d'avis médical, et la secrétaire non plus : demandez "
            "l'avis d'un médecin du cabinet (ou le 15 en cas d'urgence). Je peux trouver "
            "un rendez-vous ou un rappel par le médecin."
        )

    def prescription(self) -> Step:
        return say(
            "Je ne peux pas renouveler une ordonnance : seul un médecin le peut. Je peux "
            "proposer un rendez-vous de renouvellement avec son médecin, ou transmettez "
            "la demande au médecin.",
            open=False,
        )

    def unsupported(self) -> Step:
        return say(
            "Je ne sais pas faire cela : je ne rédige ni courrier, ni message, ni document, et "
            "je n'ai pas accès aux résultats ni à la facturation. Les courriers se préparent "
            "depuis la fiche du patient (page Patients) et sont relus par le médecin ; les "
            "messages aux patients se suivent dans la page Messages."
        )

    def knowledge(self) -> Step:
        question = self.task.latest.text.strip()[:300]
        event = self._need("search_practice_knowledge", query=question)
        if event.status != "ok" or not event.items:
            return say(
                "Je ne trouve aucune information à ce sujet dans les documents du "
                "cabinet"
                + (f" ({event.text})" if event.text and event.status != "ok" else "")
                + ". Vérifiez auprès de l'équipe."
            )
        found = event.items[0]
        # The knowledge tool answers {answer, message, passages}: "none" is said as is (never
        # the closest passage); "urgent" says its message (call the 15) before the passage.
        if found.get("answer") == "none" or ("answer" in found and not found.get("passages")):
            return say(str(found.get("message") or NO_KNOWLEDGE_ANSWER))
        passages = found.get("passages")
        shown = [p for p in passages if isinstance(p, dict)] if isinstance(passages, list) else []
        if found.get("answer") == "found" and found.get("doubtful") and shown:
            # On the topic, maybe not what was asked: the two closest passages (the right one
            # is often second there), for the secretary to check; in hybrid mode the LLM
            # reads the passages instead.
            closest = " ".join(f"{n}. {_quoted(p, 350)}" for n, p in enumerate(shown[:2], start=1))
            step = say(f"{found.get('message') or DOUBT} Les passages les plus proches : {closest}")
            step.sure, step.fallback = False, True
            return step
        urgent = f"{found.get('message')} " if found.get("answer") == "urgent" else ""
        return say(
            f"{urgent}D'après les documents du cabinet {_quoted(shown[0] if shown else found)}"
        )

    # -- patients ------------------------------------------------------------------------
    def register(self) -> Step:
        refs = self.task.patients
        if not refs:
            return say("Quel est le nom, le prénom et la date de naissance du patient ?", open=True)
        ref = refs[0]
        registered = self._event("register_patient", {})
        if registered is not None and registered.status == "ok":
            if BOOK_WORDS.search(fold(self.task.text)):
                return self.book()
            person = registered.items[0] if registered.items else {}
            return say(f"La fiche de {person.get('name', ' '.join(ref.names))} est créée.")
        found = self._narrow(self._candidates(ref))
        born = self.task.last("birth_date")
        if found and (isinstance(born, date) or len(found) == 1):
            if BOOK_WORDS.search(fold(self.task.text)):
                return self.book()
            person = found[0]
            return say(
                f"{person.get('name')} (né(e) le {replies.born(person)}) a déjà une fiche : "
                "je n'en crée pas une seconde."
            )
        if not isinstance(born, date):
            return say(
                f"Quelle est la date de naissance de {' '.join(ref.names)} (et son téléphone) ?",
                open=True,
            )
        return self.register_step(ref, born)

    # -- appointments --------------------------------------------------------------------
    def appointments(self, patient: Item) -> list[Item]:
        event = self._need(
            "list_appointments",
            chain=True,
            start_date=self.today.isoformat(),
            end_date=(self.today + timedelta(days=HORIZON_DAYS)).isoformat(),
            patient_id=patient["id"],
        )
        return [a for a in event.items if a.get("status") not in ("cancelled", "no_show")]

    def _on_days(self, items: list[Item], text: str) -> list[Item]:
        named = days(text, self.now)
        if named is None:
            return items
        span_first, span_last = named
        part = read(text, self.now).part
        picked = []
        for item in items:
            start = replies.moment(str(item.get("start")))
            if start is None or not span_first <= start.date() <= span_last:
                continue
            if part == "morning" and start.time() >= time(13):
                continue
            if part == "afternoon" and start.time() < time(12):
                continue
            picked.append(item)
        return picked

    def _one_appointment(self, patient: Item, text: str, verb: str) -> Item:
        every = self.appointments(patient)
        if not every:
            raise Need(say(f"{patient.get('name')} n'a aucun rendez-vous à venir."))
        picked = self._on_days(every, text)
        if not picked:
            others = ", ".join(replies.when_label(str(a.get("start"))) for a in every[:3])
            raise Need(
                say(
                    f"{patient.get('name')} n'a pas de rendez-vous à ce moment-là. "
                    f"Ses prochains rendez-vous : {others}. Lequel {verb} ?",
                    open=True,
                )
            )
        if len(picked) > 1:
            ordinal = self.task.latest.ordinal
            if ordinal is not None and -len(picked) <= ordinal < len(picked):
                return picked[ordinal]
            options = " ou ".join(replies.when_label(str(a.get("start"))) for a in picked[:4])
            raise Need(
                say(
                    f"{patient.get('name')} a plusieurs rendez-vous : {options}. Lequel {verb} ?",
                    open=True,
                )
            )
        return picked[0]

    def cancel(self) -> Step:
        patient = self.patient()
        done = self.task.done("cancel_appointment")
        if done:
            last = done[-1]
            if last.status == "rejected":
                return say("D'accord, je n'annule rien : le rendez-vous est maintenu.")
            if last.status == "error":
                return say(f"L'annulation n'a pas pu se faire : {last.text}")
            item = last.items[0] if last.items else {}
            note = f" {item['note']}" if item.get("note") else ""
            return say(
                f"C'est annulé : le rendez-vous de {item.get('patient', patient.get('name'))}"
                f" du {replies.when_label(str(item.get('start')))}.{note}"
            )
        appointment = self._one_appointment(patient, self.task.requests[0].timeless, "annuler")
        reason = next((r.reason for r in self.task.requests if r.reason), "")
        return call("cancel_appointment", appointment_id=appointment["id"], reason=reason or None)

    def next_appointments(self) -> Step:
        patient = self.patient()
        self.practitioners()
        every = self.appointments(patient)
        if not every:
            return say(f"{patient.get('name')} n'a aucun rendez-vous dans les deux prochains mois.")
        lines = [
            f"{replies.when_label(str(a.get('start')))} avec "
            f"{self.practitioner_name(a.get('practitioner_id'))}"
            for a in every[:3]
        ]
        head = f"Prochain rendez-vous de {patient.get('name')} : {lines[0]}."
        rest = f" Ensuite : {' ; '.join(lines[1:])}." if len(lines) > 1 else ""
        return say(head + rest)

    def agenda(self) -> Step:
        doctor = self.practitioner(default_single=True)
        first = self.when.first or self.today
        last = self.when.last or first
        event = self._need(
            "list_appointments",
            start_date=first.isoformat(),
            end_date=last.isoformat(),
            practitioner_id=doctor["id"] if doctor else None,
        )
        items = [a for a in event.items if a.get("status") not in ("cancelled", "no_show")]
        if self.when.part != "any":
            morning = self.when.part == "morning"
            items = [a for a in items if (_local_time(a).hour < NOON_HOUR) == morning]
        who = f" avec {doctor.get('name')}" if doctor else ""
        span = replies.period(first, last)
        if not items:
            return say(f"Aucun rendez-vous{who} {span}.")
        lines = "; ".join(f"{replies.clock(str(a['start']))} {a.get('patient')}" for a in items)
        return say(f"Rendez-vous{who} {span} : {lines}.")

    def preconsult(self) -> Step:
        patient = self.patient()
        done = self.task.done("send_preconsultation")
        if done:
            last = done[-1]
            if last.status == "rejected":
                return say("D'accord, je n'envoie pas le lien.")
            if last.status == "error":
                return say(f"Le lien n'a pas pu être créé : {last.text}")
            item = last.items[0] if last.items else {}
            return say(
                f"Le lien de pré-consultation de {patient.get('name')} est créé "
                f"(valable jusqu'au {replies.when_label(str(item.get('expires_at')))})."
            )
        every = self.appointments(patient)
        if not every:
            return say(
                f"{patient.get('name')} n'a aucun rendez-vous à venir : un lien de "
                "pré-consultation se rattache à un rendez-vous."
            )
        picked = self._on_days(every, self.task.requests[0].timeless)
        appointment = (picked or every)[0]
        return call("send_preconsultation", appointment_id=appointment["id"])

    # -- booking -------------------------------------------------------------------------
    def _slots(
        self,
        doctor: Item | None,
        first: date,
        last: date,
        *,
        part: str = "any",
        weekday: int | None = None,
        after: ToolEvent | None = None,
    ) -> list[Item]:
        """Free slots (a search made after ``after``: a fresh one once a write failed)."""
        duration = self.task.last("duration")
        args: dict[str, Any] = {
            "start_date": max(first, self.today).isoformat(),
            "end_date": max(last, first, self.today).isoformat(),
            "practitioner_id": doctor["id"] if doctor else None,
            "part_of_day": part if part != "any" else None,
            "weekday": weekday,
            "duration_minutes": duration if isinstance(duration, int) else None,
            "limit": 20,
        }
        args = {k: v for k, v in args.items() if v is not None}
        found: ToolEvent | None = None
        events = self.task.events
        since = events.index(after) if after is not None and after in events else -1
        for event in reversed(events[since + 1 :]):
            if (
                event.name == "find_slots"
                and event.done
                and set(event.args) == set(args)
                and all(_same(event.args.get(k), v) for k, v in args.items())
            ):
                found = event
                break
        if found is None:
            raise Need(call("find_slots", **args))
        notes = [str(i["message"]) for i in found.items if "start" not in i and i.get("message")]
        self.slot_note = notes[0] if notes else ""
        return [
            s
            for s in found.items
            if "start" in s and (replies.moment(str(s.get("start"))) or self.now) > self.now
        ]

    def _refused(self, event: ToolEvent, what: str) -> None:
        """A refusal with a reason that says when ("pas avant 10 heures", "plutôt jeudi")
        refines the request; any other one ends the task."""
        reason = fold(event.text)
        if event.text and ACTIONABLE.search(reason):
            self.when = merge(self.when, read(event.text, self.now))
            return
        raise Need(say(f"D'accord, je ne {what} pas."))

    def free_slots(self) -> Step:
        """Free slots asked for nobody in particular: list them."""
        doctor = self.practitioner()
        day = self.when.first or self.today
        last = self.when.last or (day + timedelta(days=13) if self.when.first is None else day)
        slots = self._slots(doctor, day, last, part=self.when.part)
        choice = self._pick(slots, self.when, None)
        if choice is None:
            return self._no_slot(doctor, day, last)
        listed = "; ".join(
            f"{replies.when_label(str(s['start']))} "
            f"({self.practitioner_name(s.get('practitioner_id'))})"
            for s in slots[:6]
        )
        return say(
            f"Créneaux libres {replies.period(day, last)} : {listed}. Pour quel patient "
            "dois-je réserver ?",
            open=True,
        )

    def book(self) -> Step:
        refs = self.task.patients
        if self.task.intent == "slots" and not refs:
            return self.free_slots()
        doctor = self.practitioner()
        people = [self.patient(i) for i in range(max(1, len(refs)))]
        events = self.task.done("book_appointment")
        booked = [e for e in events if e.status == "ok" and e.items]
        booked_ids = {e.items[0].get("patient_id") for e in booked}
        waiting = [p for p in people if p["id"] not in booked_ids]
        if not waiting:
            return say(self._booked_answer(booked))
        person = waiting[0]
        mine = [e for e in events if _same(e.args.get("patient_id"), person["id"])]
        excluded = {str(e.args.get("start")) for e in mine if e.status != "ok"}
        failed: ToolEvent | None = None
        if mine and mine[-1].status == "rejected":
            self._refused(mine[-1], "réserve")
        elif mine and mine[-1].status == "error":
            failed = mine[-1]
        duration = self.task.last("duration")
        reason = next((r.reason for r in self.task.requests if r.reason), "")
        when = self.when
        day = when.first or self.today
        # the next twin goes right after the first
        not_before = max(
            (replies.moment(str(e.items[0].get("end"))) for e in booked),
            default=None,
            key=lambda m: m or self.now,
        )
        if failed is None and when.at is not None and not excluded and not booked:
            start = datetime.combine(day, when.at, tzinfo=self.now.tzinfo)
            if start <= self.now:
                slots = self._slots(doctor, day, day, part=when.part)
                if not slots:
                    return say(
                        f"{when.at:%H:%M} est déjà passé et il n'y a plus de créneau "
                        f"libre {replies.period(day, day)}.",
                        open=True,
                    )
                first = slots[0]
                return say(
                    f"{when.at:%H:%M} est déjà passé. Prochain créneau libre "
                    f"{replies.period(day, day)} : {replies.clock(str(first['start']))} avec "
                    f"{self.practitioner_name(first.get('practitioner_id'))}. Je le réserve ?",
                    open=True,
                )
            if doctor is not None:
                return self._book_call(person, doctor["id"], start.isoformat(), duration, reason)
        last = when.last or (day + timedelta(days=13) if when.first is None else day)
        slots = self._slots(doctor, day, last, part=when.part, weekday=when.weekday, after=failed)
        slots = [s for s in slots if str(s.get("start")) not in excluded]
        if not_before is not None:
            slots = [
                s for s in slots if (replies.moment(str(s["start"])) or self.now) >= not_before
            ]
        choice = self._pick(slots, when, failed)
        if choice is None:
            return self._no_slot(doctor, day, last)
        first_request = self.task.requests[0]
        only_asked = first_request.wants_choice or first_request.intent == "slots"
        latest = self.task.latest
        said = read(latest.timeless, self.now) if len(self.task.requests) > 1 else None
        # "non, plutôt jeudi" after the slots were shown: show that day's, do not book yet
        other_day = (
            said is not None
            and (said.first is not None or said.part != "any")
            and said.at is None
            and not latest.accept
            and latest.ordinal is None
        )
        if (len(self.task.requests) == 1 or other_day) and only_asked and not mine:
            times = ", ".join(replies.clock(str(s["start"])) for s in slots[:3])
            who = self.practitioner_name(choice.get("practitioner_id"))
            return say(
                f"Premiers créneaux libres {replies.period(day, last)} avec {who} : {times}. "
                f"Je réserve le {replies.when_label(str(choice['start']))} pour "
                f"{person.get('name')} ?",
                open=True,
            )
        return self._book_call(
            person, choice["practitioner_id"], str(choice["start"]), duration, reason
        )

    def _book_call(
        self, person: Item, practitioner_id: Any, start: str, duration: Any, reason: str
    ) -> Step:
        return call(
            "book_appointment",
            patient_id=person["id"],
            practitioner_id=practitioner_id,
            start=start,
            duration_minutes=duration if isinstance(duration, int) else None,
            reason=reason[:200] or None,
        )

    def _pick(self, slots: list[Item], when: When, failed: ToolEvent | None) -> Item | None:
        def at(slot: Item) -> datetime:
            return replies.moment(str(slot["start"])) or self.now

        if when.after is not None:
            slots = [s for s in slots if at(s).time() >= when.after]
        if when.before is not None:
            slots = [s for s in slots if at(s).time() < when.before]
        if not slots:
            return None
        target: datetime | None = None
        if failed is not None:
            target = replies.moment(str(failed.args.get("start") or failed.args.get("new_start")))
        elif when.at is not None:
            target = datetime.combine(at(slots[0]).date(), when.at, tzinfo=self.now.tzinfo)
        if target is not None:
            later = [s for s in slots if at(s) >= target]
            return later[0] if later else slots[-1]
        if when.near is not None:
            near = when.near
            return min(
                slots,
                key=lambda s: abs(at(s).hour * 60 + at(s).minute - near.hour * 60 - near.minute),
            )
        return slots[0]

    def _no_slot(self, doctor: Item | None, first: date, last: date) -> Step:
        span = replies.period(first, last)
        note = f" ({self.slot_note})" if self.slot_note else ""
        if doctor is not None and len(self.practitioners()) > 1:
            others = [
                s
                for s in self._slots(None, first, last, part=self.when.part)
                if s.get("practitioner_id") != doctor["id"]
            ]
            if others:
                who = others[0].get("practitioner_id")
                times = ", ".join(
                    replies.when_label(str(s["start"]))
                    for s in others
                    if s.get("practitioner_id") == who
                )
                return say(
                    f"{doctor.get('name')} n'a aucun créneau libre {span}{note}. "
                    f"{self.practitioner_name(who)} a de la place : {times}. Voulez-vous l'un de "
                    "ces créneaux, ou que je l'inscrive sur la liste d'attente ?",
                    open=True,
                )
        who = f" avec {doctor.get('name')}" if doctor else ""
        return say(
            f"Aucun créneau libre{who} {span}{note}. Je peux chercher à d'autres dates ou "
            "l'inscrire sur la liste d'attente.",
            open=True,
        )

    def _booked_answer(self, booked: list[ToolEvent]) -> str:
        parts = []
        for event in booked:
            item = event.items[0]
            note = f" {item['note']}" if item.get("note") else ""
            parts.append(
                f"{item.get('patient')}, {replies.when_label(str(item.get('start')))} avec "
                f"{self.practitioner_name(item.get('practitioner_id'))}{note}"
            )
        people = {str(p.get("id")): p for p in self._people_seen()}
        born = [
            f"{people[str(e.items[0].get('patient_id'))].get('name')} né(e) le "
            f"{replies.born(people[str(e.items[0].get('patient_id'))])}"
            for e in booked
            if str(e.items[0].get("patient_id")) in people
        ]
        extra = f" ({'; '.join(born)})" if born else ""
        return "C'est réservé : " + " ; ".join(parts) + "." + extra

    def _people_seen(self) -> list[Item]:
        seen: list[Item] = []
        for task in self.task.chain():
            for event in task.events:
                if event.name in ("find_patients", "register_patient") and event.status == "ok":
                    seen += event.items
        return seen

    # -- moving --------------------------------------------------------------------------
    def move(self) -> Step:
        patient = self.patient()
        source, target_words = split_move(self.task.requests[0].timeless)
        target = read(target_words or self.task.requests[0].timeless, self.now)
        for request in self.task.requests[1:]:
            target = merge(target, read(request.timeless, self.now))
        self.when = target
        moves = self.task.done("move_appointment")
        failed: ToolEvent | None = None
        if moves:
            last = moves[-1]
            if last.status == "ok" and last.items:
                item = last.items[0]
                note = f" {item['note']}" if item.get("note") else ""
                return say(
                    f"C'est déplacé : {item.get('patient')} a maintenant rendez-vous le "
                    f"{replies.when_label(str(item.get('start')))} avec "
                    f"{self.practitioner_name(item.get('practitioner_id'))}.{note}"
                )
            if last.status == "rejected":
                self._refused(last, "déplace")
            else:
                failed = last
        appointment = self._one_appointment(patient, source, "déplacer")
        current = replies.moment(str(appointment.get("start"))) or self.now
        doctor = self.practitioner(default_single=False) if self.task.last("doctor") else None
        new_doctor = (
            doctor["id"] if doctor and doctor["id"] != appointment.get("practitioner_id") else None
        )
        by = new_doctor or appointment.get("practitioner_id")
        target = self.when
        excluded = {str(e.args.get("new_start")) for e in moves if e.status != "ok"}
        start: str | None = None
        if failed is None and (target.same_time or target.at) and not excluded:
            day = target.first if target.first and not target.time_only else current.date()
            clock = target.at or current.time()
            start = datetime.combine(day, clock, tzinfo=self.now.tzinfo).isoformat()
        else:
            earliest = target.earliest or "avanc" in fold(self.task.text)
            if failed is not None:
                moment = replies.moment(str(failed.args.get("new_start"))) or current
                first = last_day = moment.date()
            elif earliest and target.first is None:
                first, last_day = self.today, current.date()
            elif target.first is not None and not target.time_only:
                first, last_day = target.first, target.last or target.first
            elif target.part != "any" or target.time_only or "meme jour" in fold(self.task.text):
                first = last_day = current.date()  # "plutôt l'après-midi": the same day
            else:
                return say(
                    f"À quel moment voulez-vous déplacer le rendez-vous du "
                    f"{replies.when_label(str(appointment.get('start')))} ?",
                    open=True,
                )
            doctor_item = {"id": by} if by is not None else None
            slots = self._slots(doctor_item, first, last_day, part=target.part, after=failed)
            slots = [s for s in slots if str(s.get("start")) not in excluded]
            if earliest and failed is None:
                slots = [s for s in slots if (replies.moment(str(s["start"])) or current) < current]
            choice = self._pick(slots, target, failed)
            if choice is None:
                return say(
                    f"Je ne trouve pas de créneau libre pour déplacer le rendez-vous du "
                    f"{replies.when_label(str(appointment.get('start')))}. Voulez-vous "
                    "une autre date ?",
                    open=True,
                )
            start = str(choice["start"])
        return call(
            "move_appointment",
            appointment_id=appointment["id"],
            new_start=start,
            practitioner_id=new_doctor,
        )

    # -- waiting list --------------------------------------------------------------------
    def waiting(self) -> Step:
        patient = self.patient()
        doctor = None if self.task.last("any_doctor") else self.practitioner(default_single=False)
        done = self.task.done("add_to_waiting_list")
        if done:
            last = done[-1]
            if last.status == "rejected":
                return say("D'accord, je ne l'inscris pas sur la liste d'attente.")
            if last.status == "error":
                return say(f"L'inscription n'a pas pu se faire : {last.text}")
            item = last.items[0] if last.items else {}
            first = date.fromisoformat(str(item.get("earliest", self.today.isoformat())))
            last_day = date.fromisoformat(str(item.get("latest", self.today.isoformat())))
            who = f" avec {doctor.get('name')}" if doctor else ""
            return say(
                f"C'est noté : {patient.get('name')} est sur la liste d'attente{who} "
                f"{replies.period(first, last_day)}. Un créneau libéré lui sera proposé."
            )
        when = self.when
        text = fold(self.task.text)
        if when.first is not None and re.search(r"plus tot|avant (?:son|le)", text):
            first, last_day = self.today, max(self.today, when.first - timedelta(days=1))
        elif when.first is not None:
            first, last_day = max(when.first, self.today), max(when.last or when.first, self.today)
        else:
            first, last_day = self.today, self.today + timedelta(days=27)
        return call(
            "add_to_waiting_list",
            patient_id=patient["id"],
            earliest=first.isoformat(),
            latest=last_day.isoformat(),
            practitioner_id=doctor["id"] if doctor else None,
            part_of_day=when.part if when.part != "any" else None,
        )


def decide(task: Task, now: datetime) -> Step:
    """The next step for the task in progress."""
    return Planner(task, now).decide()
