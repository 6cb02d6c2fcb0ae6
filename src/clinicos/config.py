"""The one Settings object (pydantic-settings, prefix CLINICOS_). The only module that reads env."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from limits import parse_many
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development-only secret: CLINICOS_ENV=production refuses to start while it is in use.
DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"  # noqa: S105


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class HttpSettings(BaseModel):
    """How `clinicos serve` listens and what it accepts."""

    host: str = Field(
        default="127.0.0.1",
        description="Address `clinicos serve` binds to (overridden by `--host`).",
    )
    port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        description="Port `clinicos serve` binds to (overridden by `--port`).",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest request body accepted; a larger one is answered 413 problem+json.",
    )
    behind_tls: bool = Field(
        default=False,
        description=(
            "Set behind a TLS-terminating proxy: responses carry HSTS and uvicorn honours "
            "X-Forwarded-Proto/-For from the addresses in FORWARDED_ALLOW_IPS (default: loopback)."
        ),
    )


class DatabaseSettings(BaseModel):
    """Connection pool and driver timeouts."""

    pool_size: int = Field(
        default=10, ge=1, description="PostgreSQL: connections kept open per process."
    )
    max_overflow: int = Field(
        default=10,
        ge=0,
        description="PostgreSQL: extra connections allowed above `pool_size` under load.",
    )
    pool_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description=(
            "PostgreSQL: seconds to wait for a free pool connection before answering 503. "
            "SQLite: how long a writer waits for the write lock (`busy_timeout`)."
        ),
    )
    connect_timeout_seconds: int = Field(
        default=5, ge=1, description="PostgreSQL: seconds to wait when opening a connection."
    )
    echo: bool = Field(
        default=False,
        description="Log every SQL statement (bound values stay hidden). Refused in production.",
    )
    app_role: str | None = Field(
        default=None,
        description=(
            "PostgreSQL: role the app switches to (`SET ROLE`) on every connection, so row-level "
            "security applies even when the URL's user owns the tables. Migrations create "
            "`clinicos_app`; set this to it unless the URL already logs in as a non-owner role."
        ),
    )


class ObservabilitySettings(BaseModel):
    """Logs and traces."""

    log_level: str = Field(
        default="INFO",
        description=(
            "DEBUG, INFO, WARNING, ERROR or CRITICAL (any case). DEBUG is refused in production."
        ),
    )
    log_json: bool = Field(
        default=True,
        description="One JSON object per log line; `false` gives plain console lines.",
    )
    service_name: str = Field(
        default="clinicos", description="`service.name` resource attribute of exported traces."
    )
    # OTLP/HTTP endpoint (e.g. http://collector:4318); tracing is off when unset.
    otlp_endpoint: str | None = Field(
        default=None,
        description=(
            "OTLP/HTTP collector base URL (e.g. `http://collector:4318`); spans go to "
            "`<endpoint>/v1/traces`. Tracing is off when unset."
        ),
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, v: str) -> str:
        level = v.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level


class OutboxSettings(BaseModel):
    """The outbox worker and scheduled jobs."""

    batch_size: int = Field(
        default=50, ge=1, le=1000, description="Messages a worker leases per claim."
    )
    poll_interval_seconds: float = Field(
        default=1.0, gt=0, description="Idle wait between polls when nothing was claimed."
    )
    lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a claim holds a message; after it, another worker may take it.",
    )
    max_attempts: int = Field(
        default=8,
        ge=1,
        description="Failed deliveries after which a message is dead-lettered (`status='dead'`).",
    )
    backoff_base_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Retry delay after the first failure; doubles with each further failure.",
    )
    backoff_max_seconds: float = Field(
        default=900.0, gt=0, description="Upper bound of the retry delay."
    )
    retention_days: int = Field(
        default=30,
        ge=1,
        description="Delivered messages older than this are deleted by the hourly purge job.",
    )
    # `clinicos serve` runs the worker inside the API process (the embedded default).
    run_in_process: bool = Field(
        default=True,
        description=(
            "`clinicos serve` also runs the worker in its own process; "
            "`--worker`/`--no-worker` override it."
        ),
    )


class IdentitySettings(BaseModel):
    """Sign-in, tokens, lockout, MFA and password hashing."""

    jwt_issuer: str = Field(default="clinicos", description="`iss` of access tokens.")
    jwt_audience: str = Field(default="clinicos-api", description="`aud` of access tokens.")
    access_token_ttl_seconds: int = Field(
        default=900, ge=60, le=3600, description="Access-token lifetime (default 15 minutes)."
    )
    refresh_token_ttl_seconds: int = Field(
        default=14 * 24 * 3600, ge=300, description="Lifetime of each refresh token."
    )
    session_max_age_seconds: int = Field(
        default=30 * 24 * 3600,
        ge=300,
        description="Absolute lifetime of a sign-in session across refreshes (our policy).",
    )
    mfa_token_ttl_seconds: int = Field(
        default=300, ge=30, le=900, description="Time allowed between password and MFA code."
    )
    lockout_threshold: int = Field(
        default=5, ge=1, description="Failed sign-ins in a row that lock the account."
    )
    lockout_minutes: int = Field(default=15, ge=1, description="How long a lock lasts.")
    password_reset_ttl_minutes: int = Field(
        default=30, ge=5, description="Lifetime of a password-reset link."
    )
    email_verification_ttl_hours: int = Field(
        default=48, ge=1, description="Lifetime of an email-verification link."
    )
    argon2_time_cost: int = Field(default=3, ge=1, description="argon2id iterations.")
    argon2_memory_kib: int = Field(default=65536, ge=8, description="argon2id memory in KiB.")
    argon2_parallelism: int = Field(default=4, ge=1, description="argon2id lanes.")
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL used in links sent by email (reset, verification).",
    )


class MailSettings(BaseModel):
    """Outgoing email (password reset, verification)."""

    backend: Literal["file", "console", "smtp"] = Field(
        default="file",
        description=(
            "`file` writes each message as .eml under `<var_dir>/mail` (development), "
            "`console` logs that a message was sent (no content), `smtp` sends it."
        ),
    )
    from_address: str = Field(
        default="clinicos@localhost", description="Sender address of outgoing mail."
    )
    smtp_host: str = Field(default="127.0.0.1", description="SMTP server host.")
    smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP server port.")
    smtp_username: str | None = Field(default=None, description="SMTP user, if it needs one.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS.")
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, description="SMTP timeout.")


class RateLimitSettings(BaseModel):
    """Request budgets per category (`limits` notation, e.g. `5/minute`)."""

    enabled: bool = Field(default=True, description="Turn every rate limit on or off.")
    auth: str = Field(default="5/minute", description="Sign-in attempts per account and IP.")
    write: str = Field(default="30/minute", description="Writes per user.")
    ai: str = Field(default="10/minute", description="Assistant requests per user.")
    read: str = Field(default="100/minute", description="Reads per user.")

    @field_validator("auth", "write", "ai", "read")
    @classmethod
    def _one_limit(cls, value: str) -> str:
        # Checked here so `config check` and start-up refuse it with the variable's name.
        try:
            items = parse_many(value)
        except ValueError as exc:
            raise ValueError("not a rate limit like '30/minute'") from exc
        if len(items) != 1:
            raise ValueError("exactly one limit like '30/minute'")
        return value


_REASON_CODE = re.compile(r"[a-z0-9_]{1,64}")
DEFAULT_OVERRIDE_REASON_CODES = (
    "benefit_outweighs_risk",
    "patient_tolerating",
    "specialist_recommendation",
    "data_out_of_date",
    "other",
)


class CdsSettings(BaseModel):
    """Decision support: the override reasons offered and who must sign off an override."""

    override_reason_codes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_OVERRIDE_REASON_CODES),
        min_length=1,
        description=(
            "Reason codes a clinician may give when overriding a BLOCK or WARN, as a JSON list "
            "(lower-case letters, digits and `_`); `other` also requires a comment."
        ),
    )
    block_override_needs_cosign: bool = Field(
        default=True,
        description=(
            "A BLOCK override stays `pending_cosign` until a pharmacist other than its author "
            "co-signs it (our policy); `false` approves it at once."
        ),
    )

    @field_validator("override_reason_codes")
    @classmethod
    def _reason_codes(cls, value: list[str]) -> list[str]:
        for code in value:
            if not _REASON_CODE.fullmatch(code):
                raise ValueError("each code is 1-64 lower-case letters, digits or '_'")
        if len(set(value)) != len(value):
            raise ValueError("codes must be unique")
        return value


# The shortest audit retention anyone may configure, also enforced inside PostgreSQL by the
# purge function (migration 0015): our floor, so a misconfiguration or a compromised app role
# cannot erase recent evidence.
AUDIT_RETENTION_FLOOR_DAYS = 365


class RetentionSettings(BaseModel):
    """How long each category of operational data is kept before the daily retention job purges
    it (docs/contexts/governance.md, "Retention"). Clinical records are not here: they are kept
    for their legal retention and never purged by this job."""

    audit_days: int = Field(
        default=2192,
        ge=AUDIT_RETENTION_FLOOR_DAYS,
        description=(
            "Audit trail rows older than this are purged (the chain keeps an anchor so it still "
            "verifies). Default 6 years: HIPAA 45 CFR 164.316(b)(2)(i); never below 365 days."
        ),
    )
    governance_events_days: int = Field(
        default=1827,
        ge=365,
        description=(
            "Decision-support events counted for the KPIs (`governance_kpi_event`) older than "
            "this are purged; the daily counts (no ids) stay. Default 5 years (our policy)."
        ),
    )
    auth_days: int = Field(
        default=90,
        ge=1,
        description=(
            "Sign-in sessions that ended (expired or revoked) and used or expired account "
            "tokens are deleted this long after they ended. Default 90 days (our policy); the "
            "sign-in events themselves are audit rows."
        ),
    )
    batch_size: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Rows purged per transaction: a failed run keeps what it finished.",
    )


# PHI keys are 256-bit AES-GCM / HMAC-SHA256 keys, given as base64 (standard or URL-safe).
PHI_KEY_BYTES = 32


def decode_phi_key(value: str) -> bytes:
    """The raw bytes of a base64 PHI key; ``ValueError`` unless it is exactly 32 bytes.

    The message never contains the value."""
    text = value.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None
    if len(raw) != PHI_KEY_BYTES:
        raise ValueError(f"decodes to {len(raw)} bytes, not {PHI_KEY_BYTES}")
    return raw


class PhiSettings(BaseModel):
    """Keys for field-level PHI encryption and blind indexes (ADR 0013). Unset, development keys
    are derived from the installation secret; production refuses that."""

    keys: dict[int, SecretStr] = Field(
        default_factory=dict,
        description=(
            'Data-key ring as JSON, key version → base64 of 32 random bytes, e.g. `{"1": "…", '
            '"2": "…"}`. Old versions stay to decrypt what they sealed until re-encrypted. '
            "Unset: development-only keys derived from `CLINICOS_SECRET_KEY` (refused in "
            "production)."
        ),
    )
    active_version: int = Field(
        default=1,
        ge=1,
        description=(
            "Key version that encrypts new values; must be a version in `CLINICOS_PHI__KEYS`."
        ),
    )
    blind_index_key: SecretStr | None = Field(
        default=None,
        description=(
            "Base64 of 32 random bytes keying the exact-match search indexes (HMAC-SHA256); "
            "must differ from every data key and is not rotated with them. Unset: a "
            "development-only key derived from `CLINICOS_SECRET_KEY` (refused in production)."
        ),
    )

    key_file: Path | None = Field(
        default=None,
        description=(
            'Path of a JSON key file (`{"active_version": 2, "keys": {"1": "…", "2": '
            '"…"}, "blind_index_key": "…"}`, mode 0600) that then holds the data keys, the '
            "active version and the blind-index key instead of the three variables above, which "
            "must stay unset. `clinicos keys add|promote|retire` rewrite it atomically and running "
            "processes reload it within a second. Until it exists, development keys are used "
            "(production refuses to start)."
        ),
    )

    @field_validator("keys")
    @classmethod
    def _positive_versions(cls, value: dict[int, SecretStr]) -> dict[int, SecretStr]:
        if any(version < 1 for version in value):
            raise ValueError("key versions are whole numbers from 1")
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> PhiSettings:
        if self.key_file is None:
            return self
        clashing = []
        if self.keys:
            clashing.append("CLINICOS_PHI__KEYS")
        if "active_version" in self.model_fields_set:
            clashing.append("CLINICOS_PHI__ACTIVE_VERSION")
        if self.blind_index_key is not None and self.blind_index_key.get_secret_value():
            clashing.append("CLINICOS_PHI__BLIND_INDEX_KEY")
        if clashing:
            raise ValueError(
                "CLINICOS_PHI__KEY_FILE is set, so the key file holds the PHI keys; unset "
                + ", ".join(clashing)
            )
        return self


@dataclass(frozen=True)
class PhiKeyFile:
    """The content of a PHI key file (``CLINICOS_PHI__KEY_FILE``): raw 32-byte keys by version,
    the active version, the blind-index key, and the versions retired from it (never reused)."""

    active_version: int
    keys: Mapping[int, bytes]
    blind_index_key: bytes
    retired_versions: tuple[int, ...] = field(default=())

    def __repr__(self) -> str:  # never show key material
        return (
            f"PhiKeyFile(active_version={self.active_version}, versions={sorted(self.keys)}, "
            f"retired_versions={list(self.retired_versions)})"
        )

    def to_json(self) -> str:
        """The file's text: versions as strings, keys as standard base64."""
        data = {
            "active_version": self.active_version,
            "keys": {
                str(v): base64.b64encode(self.keys[v]).decode("ascii") for v in sorted(self.keys)
            },
            "blind_index_key": base64.b64encode(self.blind_index_key).decode("ascii"),
            "retired_versions": sorted(self.retired_versions),
        }
        return json.dumps(data, indent=2) + "\n"


class PhiKeyFileError(ValueError):
    """A key file that cannot be used; the message names the problem, never a key.

    ``missing`` is true when the file does not exist."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def read_phi_key_file(path: Path) -> PhiKeyFile:
    """Read and validate a key file; :class:`PhiKeyFileError` says what is wrong with it."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PhiKeyFileError(f"{path} does not exist", missing=True) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PhiKeyFileError(f"{path} cannot be read ({reason})") from None
    try:
        return parse_phi_key_file(raw)
    except PhiKeyFileError as exc:
        raise PhiKeyFileError(f"{path}: {exc}") from None


def parse_phi_key_file(raw: bytes | str) -> PhiKeyFile:
    """Validate a key file's text: the rules production applies to the variables (32-byte
    base64 keys, versions from 1, the active version present, no two versions sharing a key,
    a separate blind-index key)."""
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        raise PhiKeyFileError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise PhiKeyFileError(f"not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict):
        raise PhiKeyFileError("not a JSON object")
    unknown = set(data) - {"active_version", "keys", "blind_index_key", "retired_versions"}
    if unknown:
        raise PhiKeyFileError(f"unknown fields {sorted(unknown)}")
    active = data.get("active_version")
    if not _is_version(active):
        raise PhiKeyFileError("'active_version' must be a whole number from 1")
    entries = data.get("keys")
    if not isinstance(entries, dict) or not entries:
        raise PhiKeyFileError("'keys' must be a non-empty object, version → base64 key")
    keys: dict[int, bytes] = {}
    for name, value in entries.items():
        if not (isinstance(name, str) and name.isascii() and name.isdigit()) or int(name) < 1:
            raise PhiKeyFileError("'keys' versions must be whole numbers from 1")
        version = int(name)
        if version in keys:
            raise PhiKeyFileError(f"version {version} appears twice")
        if not isinstance(value, str):
            raise PhiKeyFileError(f"version {version}: not a base64 string")
        try:
            raw_key = decode_phi_key(value)
        except ValueError as exc:
            raise PhiKeyFileError(f"version {version}: {exc}") from None
        twin = next((v for v, other in keys.items() if other == raw_key), None)
        if twin is not None:
            raise PhiKeyFileError(f"versions {twin} and {version} share a key")
        keys[version] = raw_key
    if active not in keys:
        raise PhiKeyFileError(f"active version {active} is not in 'keys'")
    blind_text = data.get("blind_index_key")
    if not isinstance(blind_text, str):
        raise PhiKeyFileError("'blind_index_key' must be a base64 string")
    try:
        blind = decode_phi_key(blind_text)
    except ValueError as exc:
        raise PhiKeyFileError(f"blind_index_key: {exc}") from None
    same = [v for v, raw_key in keys.items() if raw_key == blind]
    if same:
        raise PhiKeyFileError(f"blind_index_key equals the data key of version {same[0]}")
    retired = data.get("retired_versions", [])
    if not isinstance(retired, list) or not all(_is_version(v) for v in retired):
        raise PhiKeyFileError("'retired_versions' must be a list of whole numbers from 1")
    reused = sorted(set(retired) & set(keys))
    if reused:
        raise PhiKeyFileError(f"version {reused[0]} is both retired and in 'keys'")
    return PhiKeyFile(
        active_version=active,
        keys=keys,
        blind_index_key=blind,
        retired_versions=tuple(sorted(set(retired))),
    )


def _is_version(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class Settings(BaseSettings):
    """Every setting; environment variables are ``CLINICOS_<NAME>``, nested ones
    ``CLINICOS_<SECTION>__<NAME>``, optionally from a ``.env`` file in the working directory."""

    model_config = SettingsConfigDict(
        env_prefix="CLINICOS_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
    )

    env: Environment = Field(
        default=Environment.development,
        description=(
            "`production` turns on the start-up refusal rules and forbids `db reset`; the first "
            "`db upgrade` records the value in `_environment_marker`."
        ),
    )
    debug: bool = Field(
        default=False, description="Debug flag; no code reads it yet. Refused in production."
    )
    var_dir: Path = Field(
        default=Path("var"),
        description=(
            "Directory for local state, relative to the working directory; holds `clinicos.db` "
            "when no database URL is set."
        ),
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "`postgresql://user:password@host:5432/db` (or `sqlite:///path`). Unset: SQLite file "
            "`<var_dir>/clinicos.db`. Required in production."
        ),
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description=(
            "Redis URL (`redis://host:6379/0`): rate limits are shared across processes there; "
            "unset, each process keeps its own in memory."
        ),
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    secret_key: SecretStr = Field(
        default=SecretStr(DEV_SECRET_KEY),
        description=(
            "Installation secret: seals token-signing keys and TOTP secrets at rest. "
            "Production needs 32+ characters and not the development default."
        ),
    )
    http: HttpSettings = Field(default=HttpSettings(), description="HTTP server settings.")
    database: DatabaseSettings = Field(
        default=DatabaseSettings(), description="Database pool and timeouts."
    )
    observability: ObservabilitySettings = Field(
        default=ObservabilitySettings(), description="Logging and tracing."
    )
    outbox: OutboxSettings = Field(
        default=OutboxSettings(), description="Outbox worker and scheduled jobs."
    )
    identity: IdentitySettings = Field(
        default=IdentitySettings(), description="Sign-in, tokens, lockout and MFA."
    )
    mail: MailSettings = Field(default=MailSettings(), description="Outgoing email.")
    rate_limit: RateLimitSettings = Field(
        default=RateLimitSettings(), description="Rate limits per category."
    )
    phi: PhiSettings = Field(
        default=PhiSettings(), description="PHI field-encryption and blind-index keys."
    )
    cds: CdsSettings = Field(default=CdsSettings(), description="Decision support overrides.")
    retention: RetentionSettings = Field(
        default=RetentionSettings(), description="How long operational data is kept."
    )
    demo_password: SecretStr | None = Field(
        default=None,
        description=(
            "Password of the demo users that `make run` seeds; generated and printed once "
            "when unset."
        ),
    )

    @property
    def effective_database_url(self) -> str:
        """Async SQLAlchemy URL; defaults to the embedded SQLite file under ``var_dir``."""
        if not self.database_url:
            return f"sqlite+aiosqlite:///{(self.var_dir / 'clinicos.db').as_posix()}"
        return normalize_database_url(self.database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def normalize_database_url(url: str) -> str:
    """Accept the usual spellings and pick our async drivers (aiosqlite, psycopg 3)."""
    for prefix in ("postgres://", "postgresql://", "postgresql+asyncpg://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


class ConfigurationError(Exception):
    """Settings that must not run; the message names every offending variable."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = [f"  {var}: {why}" for var, why in problems]
        super().__init__("refusing to start with this configuration:\n" + "\n".join(lines))


def production_problems(settings: Settings) -> list[tuple[str, str]]:
    """What makes these settings unfit for production, as (variable, reason) pairs."""
    if settings.env is not Environment.production:
        return []
    problems: list[tuple[str, str]] = []
    secret = settings.secret_key.get_secret_value()
    if secret == DEV_SECRET_KEY or not secret:
        problems.append(("CLINICOS_SECRET_KEY", "missing or the development default"))
    elif len(secret) < 32:
        problems.append(("CLINICOS_SECRET_KEY", "shorter than 32 characters"))
    if not settings.database_url:
        problems.append(("CLINICOS_DATABASE_URL", "missing (the embedded SQLite default)"))
    elif settings.is_sqlite:
        problems.append(("CLINICOS_DATABASE_URL", "SQLite is for development and demos only"))
    if settings.debug:
        problems.append(("CLINICOS_DEBUG", "debug must be off in production"))
    if settings.database.echo:
        problems.append(("CLINICOS_DATABASE__ECHO", "SQL echo logs statements; off in production"))
    if settings.observability.log_level == "DEBUG":
        problems.append(("CLINICOS_OBSERVABILITY__LOG_LEVEL", "DEBUG logging in production"))
    problems.extend(_phi_problems(settings.phi))
    return problems


def _phi_problems(phi: PhiSettings) -> list[tuple[str, str]]:
    """Production rules for the PHI keys: present, well formed, consistent and separate."""
    if phi.key_file is not None:
        try:
            read_phi_key_file(phi.key_file)
        except PhiKeyFileError as exc:
            hint = " (create it with `clinicos keys add`)" if exc.missing else ""
            return [("CLINICOS_PHI__KEY_FILE", f"{exc}{hint}")]
        return []
    problems: list[tuple[str, str]] = []
    data_keys: dict[int, bytes] = {}
    if not phi.keys:
        problems.append(
            ("CLINICOS_PHI__KEYS", "missing (development keys derived from CLINICOS_SECRET_KEY)")
        )
    for version, secret in sorted(phi.keys.items()):
        try:
            raw = decode_phi_key(secret.get_secret_value())
        except ValueError as exc:
            problems.append(("CLINICOS_PHI__KEYS", f"version {version}: {exc}"))
            continue
        twin = next((v for v, other in data_keys.items() if other == raw), None)
        if twin is not None:
            problems.append(("CLINICOS_PHI__KEYS", f"versions {twin} and {version} share a key"))
        data_keys[version] = raw
    if phi.keys and phi.active_version not in phi.keys:
        problems.append(
            (
                "CLINICOS_PHI__ACTIVE_VERSION",
                f"version {phi.active_version} is not in CLINICOS_PHI__KEYS",
            )
        )
    if phi.blind_index_key is None or not phi.blind_index_key.get_secret_value():
        problems.append(
            (
                "CLINICOS_PHI__BLIND_INDEX_KEY",
                "missing (development key derived from CLINICOS_SECRET_KEY)",
            )
        )
    else:
        try:
            blind = decode_phi_key(phi.blind_index_key.get_secret_value())
        except ValueError as exc:
            problems.append(("CLINICOS_PHI__BLIND_INDEX_KEY", str(exc)))
        else:
            same = [v for v, raw in data_keys.items() if raw == blind]
            if same:
                problems.append(
                    (
                        "CLINICOS_PHI__BLIND_INDEX_KEY",
                        f"equals the data key of version {same[0]}; use a separate key",
                    )
                )
    return problems


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (and ``.env``) and refuse unsafe production ones."""
    settings = Settings(**overrides)
    problems = production_problems(settings)
    if problems:
        raise ConfigurationError(problems)
    return settings


def masked_view(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data, every secret masked."""
    data = settings.model_dump(mode="json")
    data["database_url"] = mask_url(settings.effective_database_url)
    for key in ("secret_key", "redis_url"):
        value = getattr(settings, key)
        if key == "redis_url" and value is not None:
            data[key] = mask_url(value.get_secret_value())
        elif value is not None:
            data[key] = "********"
    return data


def mask_url(url: str) -> str:
    """Hide the password of a URL (``scheme://user:***@host/db``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user, has_pw, _ = creds.partition(":")
    return f"{scheme}://{user}{':***' if has_pw else ''}@{host}"
