"""Model governance: what the secretaries did with each action the assistant proposed (the
online quality signals of a model), the acceptance runs that let a model serve, and the
admin's choices (drift thresholds, forced model, way back)."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class AssistantProposal(SQLModel, table=True):
    """One action the assistant proposed (a confirmation card) and the secretary's decision:
    ``approve`` as is, ``edit`` (``edited_args`` names the changed arguments) or ``reject``
    (``refusal_reason`` when she typed one); ``decision`` is empty while it waits."""

    __tablename__ = "assistant_proposals"
    __table_args__ = (
        Index("ix_assistant_proposals_conversation_id_decision", "conversation_id", "decision"),
        CheckConstraint("decision IN ('', 'approve', 'edit', 'reject')", name="decision"),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int  # no foreign key: the figures outlive purged conversations
    user_id: int | None = None
    tool: str = Field(max_length=64)
    provider: str = Field(max_length=16)
    model: str = Field(max_length=128)
    model_digest: str = Field(default="", max_length=128)
    prompt_version: int = 0
    turns: int = 1  # the assistant's turns since the task began, this one included
    tool_errors: int = 0  # tool calls that failed on the way
    proposed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    decision: str = Field(default="", max_length=8)
    edited_args: list[str] = Field(default_factory=list, sa_type=JSON)
    refusal_reason: str = Field(default="", max_length=500)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    seconds_to_decision: float | None = None


class ModelAcceptance(SQLModel, table=True):
    """One run of the acceptance gate: the model against the ``rules`` floor on the same
    secretary scenarios. ``categories`` maps a category to ``{"scenarios", "pass_1",
    "pass_k", "rules_pass_1", "rules_pass_k"}``; ``reasons`` explain a refusal."""

    __tablename__ = "model_acceptances"

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=16)
    model: str = Field(max_length=128, index=True)
    digest: str = Field(default="", max_length=128)
    prompt_version: int = 0
    repeats: int = 1
    scenarios: int = 0
    pass_1: float = 0.0
    pass_k: float = 0.0
    rules_pass_1: float = 0.0
    rules_pass_k: float = 0.0
    categories: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    accepted: bool = False
    reasons: list[str] = Field(default_factory=list, sa_type=JSON)
    run_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    run_by: str = Field(default="", max_length=128)


class ModelGovernance(SQLModel, table=True):
    """The admin's choices, one row (id 1). ``mode``: ``gate`` (the configured model when
    accepted), ``pinned`` (``acceptance_id``'s model, e.g. after a way back), ``forced``
    (``forced_model`` without the gate) or ``rules``. Drift thresholds are fractions; an
    alert needs at least ``min_decisions`` decisions in the week."""

    __tablename__ = "model_governance"
    __table_args__ = (
        CheckConstraint("mode IN ('gate', 'pinned', 'forced', 'rules')", name="mode"),
    )

    id: int | None = Field(default=None, primary_key=True)
    mode: str = Field(default="gate", max_length=8)
    acceptance_id: int | None = None
    forced_provider: str = Field(default="", max_length=16)
    forced_model: str = Field(default="", max_length=128)
    max_refusal_rate: float = 0.3
    max_edit_rate: float = 0.5
    min_approval_rate: float = 0.4
    min_decisions: int = 10
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str = Field(default="", max_length=128)
