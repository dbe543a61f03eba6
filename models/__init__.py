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
from models.instruction_sheets import InstructionSheet
from models.jobs import Job, JobStatus
from models.knowledge import IngestionStatus, KnowledgeDocument
from models.mcp_clients import McpClient
from models.model_governance import AssistantProposal, ModelAcceptance, ModelGovernance
from models.notifications import (
    AppointmentLink,
    NotificationConsent,
    NotificationSettings,
    OutboxMessage,
)
from models.online_booking import OnlineBookingRules, SlotHold
from models.patients import Patient, RegistrationStatus, Sex
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
    "AssistantProposal",
    "AssistantUsage",
    "AuditEvent",
    "CalendarFeed",
    "Conversation",
    "DocumentKind",
    "DocumentVersion",
    "GeneratedDocument",
    "HolidayOpening",
    "IngestionStatus",
    "InstructionSheet",
    "Job",
    "JobStatus",
    "KnowledgeDocument",
    "McpClient",
    "ModelAcceptance",
    "ModelGovernance",
    "NotificationConsent",
    "NotificationSettings",
    "OfferStatus",
    "OnlineBookingRules",
    "OutboxMessage",
    "PartOfDay",
    "Patient",
    "PracticeClosure",
    "Practitioner",
    "PreConsultation",
    "PreConsultationStatus",
    "Questionnaire",
    "RegistrationStatus",
    "ReviewStatus",
    "Role",
    "Sex",
    "SlotHold",
    "User",
    "VisitType",
    "VisitTypeDuration",
    "WaitingListEntry",
    "WaitingOffer",
    "WaitingStatus",
    "WorkingHours",
    "metadata",
]
