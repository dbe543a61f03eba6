"""The practice's notification settings: read with defaults, checked and saved by an admin."""

from dataclasses import dataclass
from datetime import time

from sqlmodel import Session, col, select

from app.services.core import audit
from app.services.core.errors import InvalidInput
from models.notifications import NotificationSettings
from models.patients import PatientInputError, normalize_email
from models.types import utcnow

MAX_REMINDERS = 4
MAX_REMINDER_HOURS = 14 * 24
SMS_SENDER_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -.")


class InvalidNotificationSettings(InvalidInput):
    """A notification setting is out of range; the message says which."""


@dataclass(frozen=True)
class SettingsInput:
    """What the admin page sends."""

    email_enabled: bool
    sms_enabled: bool
    reminder_hours: list[int]
    window_start: time
    window_end: time
    cancel_cutoff_hours: int
    sender_name: str = ""
    sender_email: str = ""
    reply_to: str = ""
    sms_sender: str = ""


def current(session: Session) -> NotificationSettings:
    """The saved settings, or the defaults (nothing sent until an admin turns a channel on)."""
    row = session.exec(select(NotificationSettings).order_by(col(NotificationSettings.id))).first()
    return row if row is not None else NotificationSettings()


def any_channel(settings: NotificationSettings) -> bool:
    return settings.email_enabled or settings.sms_enabled


def _email(value: str, fr: str, en: str) -> str:
    if not value.strip():
        return ""
    try:
        return normalize_email(value) or ""
    except PatientInputError as exc:
        raise InvalidNotificationSettings(fr, en) from exc


def check(data: SettingsInput) -> SettingsInput:
    """Validate every field; raises ``InvalidNotificationSettings`` with a clear message."""
    hours = sorted(set(data.reminder_hours), reverse=True)
    if len(hours) > MAX_REMINDERS or any(not 1 <= h <= MAX_REMINDER_HOURS for h in hours):
        raise InvalidNotificationSettings(
            f"Rappels : au plus {MAX_REMINDERS} délais, chacun entre 1 et 336 heures.",
            f"Reminders: at most {MAX_REMINDERS} delays, each between 1 and 336 hours.",
        )
    if data.window_start >= data.window_end:
        raise InvalidNotificationSettings(
            "La plage d'envoi doit commencer avant de finir (ex. 08:00 – 20:00).",
            "The sending window must start before it ends (e.g. 08:00 – 20:00).",
        )
    if not 0 <= data.cancel_cutoff_hours <= 14 * 24:
        raise InvalidNotificationSettings(
            "Délai d'annulation entre 0 et 336 heures.",
            "Cancellation cut-off between 0 and 336 hours.",
        )
    sms_sender = data.sms_sender.strip()
    if len(sms_sender) > 11 or not set(sms_sender) <= SMS_SENDER_CHARS:
        raise InvalidNotificationSettings(
            "Expéditeur SMS : 11 caractères au plus, lettres et chiffres.",
            "SMS sender: 11 characters at most, letters and digits.",
        )
    return SettingsInput(
        email_enabled=data.email_enabled,
        sms_enabled=data.sms_enabled,
        reminder_hours=hours,
        window_start=data.window_start,
        window_end=data.window_end,
        cancel_cutoff_hours=data.cancel_cutoff_hours,
        sender_name=" ".join(data.sender_name.split())[:100],
        sender_email=_email(
            data.sender_email,
            "Adresse d'expédition invalide.",
            "Invalid sender address.",
        ),
        reply_to=_email(data.reply_to, "Adresse de réponse invalide.", "Invalid reply-to address."),
        sms_sender=sms_sender,
    )


def save(
    session: Session, actor: audit.Actor, data: SettingsInput, *, user_id: int | None = None
) -> NotificationSettings:
    """Check and store the settings (one row), audited with the names of the changed fields."""
    checked = check(data)
    row = session.exec(select(NotificationSettings).order_by(col(NotificationSettings.id))).first()
    row = row or NotificationSettings()
    changed = []
    for name, value in checked.__dict__.items():
        if getattr(row, name) != value:
            changed.append(name)
            setattr(row, name, value)
    row.updated_by_id = user_id
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "notification_settings.update",
        record_type="notification_settings",
        record_id=row.id,
        details={"changed": changed},
    )
    return row
