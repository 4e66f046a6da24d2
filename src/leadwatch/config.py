"""Settings, read from LEADWATCH_* environment variables (and a .env file) at the entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADWATCH_", env_file=".env", extra="ignore")

    home: Path = Field(
        default=Path(".leadwatch"),
        description="Folder for the embedded SQLite database and the model files.",
    )
    database_url: str | None = Field(
        default=None,
        description="postgresql+psycopg://... URL; default: SQLite in the home folder.",
    )
    default_dealership: str = "Main Store"
    default_timezone: str = "America/Chicago"
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    import_batch_size: int = Field(default=5_000, gt=0, le=100_000)
    duplicate_window_hours: float = Field(default=72.0, gt=0)
    api_docs: bool = Field(
        default=True,
        description="Serve /docs and /openapi.json (no data, but public): turn off in production.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs model files; default: a random key kept in HOME/secret.key.",
    )

    public_url: str | None = Field(
        default=None,
        description="Address people use to reach LeadWatch (claim links); default http://HOST:PORT.",
    )
    claim_link_hours: float = Field(
        default=24.0, gt=0, le=24 * 14, description="How long a claim link in a message works."
    )
    worker_poll_seconds: float = Field(
        default=0.25, gt=0, le=60, description="How often workers look for due steps."
    )
    sweep_seconds: float = Field(
        default=60.0, gt=0, description="How often open leads are re-scored and re-assessed."
    )

    # --- delivery ---------------------------------------------------------------------------
    smtp_host: str | None = Field(default=None, description="SMTP server; unset: no email.")
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "LeadWatch <leadwatch@localhost>"
    twilio_account_sid: str | None = Field(default=None, description="Unset: no SMS.")
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_base_url: str = "https://api.twilio.com"
    webhook_signing_secret: SecretStr | None = Field(
        default=None, description="Signs webhook bodies; default: derived from the secret key."
    )
    http_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    allow_private_urls: bool = Field(
        default=False,
        description="Let webhooks, Slack and SMS reach private or loopback addresses (tests).",
    )
    allow_http_urls: bool = Field(
        default=False, description="Allow plain http:// outgoing URLs (development only)."
    )
    delivery_max_age_hours: float = Field(
        default=24.0, gt=0, description="A message still unsent after this is a dead letter."
    )
    delivery_retry_seconds: float = Field(
        default=30.0, gt=0, description="First retry delay; doubles each attempt, with jitter."
    )
    delivery_lease_seconds: float = Field(
        default=300.0, gt=0, description="A worker that holds a message longer loses it."
    )
    sms_throttle_count: int = Field(default=5, ge=1, description="At most this many SMS...")
    sms_throttle_minutes: float = Field(default=15.0, gt=0, description="...per recipient here.")

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. America/Chicago)") from None
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'leadwatch.db').resolve()}"

    @property
    def public_base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def is_embedded(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def secret_key_value(self) -> str | None:
        return self.secret_key.get_secret_value() if self.secret_key else None
