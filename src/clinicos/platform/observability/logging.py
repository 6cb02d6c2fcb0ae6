"""structlog JSON logging with request context and PHI redaction applied to every line."""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

REDACTED = "[redacted]"

# A key is sensitive when any of its words (split on _ - . and camelCase) is one of these. This is
# deliberately broad: losing a harmless value from a log costs less than leaking PHI into one.
_SENSITIVE_WORDS = frozenset(
    {
        "name",
        "names",
        "given",
        "family",
        "surname",
        "birth",
        "dob",
        "birthdate",
        "phone",
        "mobile",
        "telephone",
        "email",
        "mail",
        "address",
        "street",
        "zip",
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "tokens",
        "otp",
        "totp",
        "authorization",
        "cookie",
        "apikey",
        "credential",
        "credentials",
        "note",
        "notes",
        "text",
        "content",
        "body",
        "message",
        "comment",
        "reason",
        "ssn",
        "cpf",
        "rg",
        "ci",
        "nid",
        "mrn",
        "national",
        "passport",
        "diagnosis",
        "sex",
        "gender",
        "photo",
        "signature",
    }
)
# Structural keys written by the logging pipeline itself; never redacted.
_STRUCTURAL_KEYS = frozenset(
    {"event", "level", "timestamp", "logger", "request_id", "exception", "exc_type", "code_path"}
)
_WORD_SPLIT = re.compile(r"[_\-.\s]+|(?<=[a-z0-9])(?=[A-Z])")


def is_sensitive_key(key: str) -> bool:
    if key in _STRUCTURAL_KEYS:
        return False
    words = [w.lower() for w in _WORD_SPLIT.split(key) if w]
    if set(words) & _SENSITIVE_WORDS:
        return True
    # "api_key", "private_key", "mfa_code": a key or code is secret when it names one.
    return (
        len(words) > 1
        and words[-1] in {"key", "code"}
        and words[0] in {"api", "private", "mfa", "recovery", "verification", "reset"}
    )


def _redact(value: Any, depth: int = 0) -> Any:
    if depth > 8:
        return REDACTED
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_sensitive_key(k) else _redact(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set):
        return [_redact(v, depth + 1) for v in value]
    return value


def redact_phi(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace values of sensitive keys, at any depth, with a marker."""
    return _redact(event_dict)


def render_exception_without_message(
    _logger: WrappedLogger, _name: str, event_dict: EventDict
) -> EventDict:
    """Keep the exception type and stack frames but drop the message, which may hold PHI
    (database drivers quote offending values in theirs)."""
    exc_info = event_dict.pop("exc_info", None)
    if not exc_info:
        return event_dict
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    exc_type, exc, tb = exc_info
    if exc_type is None:
        return event_dict
    event_dict["exc_type"] = f"{exc_type.__module__}.{exc_type.__qualname__}"
    frames = traceback.extract_tb(tb)
    event_dict["code_path"] = [f"{f.filename}:{f.lineno}:{f.name}" for f in frames][-15:]
    chain: list[str] = []
    cause = exc.__cause__ or exc.__context__ if exc is not None else None
    while cause is not None and len(chain) < 5:
        chain.append(f"{type(cause).__module__}.{type(cause).__qualname__}")
        cause = cause.__cause__ or cause.__context__
    if chain:
        event_dict["exc_chain"] = chain
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        render_exception_without_message,
        redact_phi,
    ]


def configure_logging(
    level: str = "INFO", *, json: bool = True, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging (uvicorn, sqlalchemy, alembic) through one pipeline."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _CurrentStdoutHandler()
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own access log would print raw paths (which may hold ids); we log our own line.
    logging.getLogger("uvicorn.access").disabled = True
    # Database drivers log statements and their parameters (PHI) at DEBUG/INFO: only their
    # warnings get through, whatever the root level. (SQLAlchemy's own `echo` keeps working: it
    # sets its engine logger's level itself, and bound values stay hidden by hide_parameters.)
    for driver in ("aiosqlite", "psycopg"):
        logging.getLogger(driver).setLevel(max(logging.WARNING, root.level))
    # Alembic narrates every schema-state check at INFO; only its warnings matter at run time.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class _CurrentStdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at emit time (it may be swapped after set-up)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        """Ignored: StreamHandler.__init__ assigns one, but we always write to the current one."""


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
