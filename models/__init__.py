"""SQLModel tables, shared pydantic types, engine and session factory. No business rules."""

from sqlmodel import SQLModel

from models.appointments import (
    Appointment,
    AppointmentSource,
    AppointmentStatus,
    OfferStatus,
    PartOfDay,
    WaitingListEntry,
    WaitingOffer,
    WaitingStatus,
)
from models.assistant_usage import AssistantUsage
from models.audit import ActorKind, AuditEvent
from models.conversations import Conversation
from models.documents import DocumentKind, DocumentVersion, GeneratedDocument, ReviewStatus
from models.jobs import Job, JobStatus
from models.knowledge import IngestionStatus, KnowledgeDocument
from models.mcp_clients import McpClient
from models.notifications import (
    AppointmentLink,
    NotificationConsent,
    NotificationSettings,
    OutboxMessage,
)
from models.patients import Patient, Sex
from models.practice import (
    Absence,
    CalendarFeed,
    HolidayOpening,
    PracticeClosure,
    Practitioner,
    VisitType,
    VisitTypeDuration,
    WorkingHours,
)
from models.questionnaires import PreConsultation, PreConsultationStatus, Questionnaire
from models.users import Role, User

metadata = SQLModel.metadata

__all__ = [
    "Absence",
    "ActorKind",
    "Appointment",
    "AppointmentLink",
    "AppointmentSource",
    "AppointmentStatus",
    "AssistantUsage",
    "AuditEvent",
    "CalendarFeed",
    "Conversation",
    "DocumentKind",
    "DocumentVersion",
    "GeneratedDocument",
    "HolidayOpening",
    "IngestionStatus",
    "Job",
    "JobStatus",
    "KnowledgeDocument",
    "McpClient",
    "NotificationConsent",
    "NotificationSettings",
    "OfferStatus",
    "OutboxMessage",
    "PartOfDay",
    "Patient",
    "PracticeClosure",
    "Practitioner",
    "PreConsultation",
    "PreConsultationStatus",
    "Questionnaire",
    "ReviewStatus",
    "Role",
    "Sex",
    "User",
    "VisitType",
    "VisitTypeDuration",
    "WaitingListEntry",
    "WaitingOffer",
    "WaitingStatus",
    "WorkingHours",
    "metadata",
]
