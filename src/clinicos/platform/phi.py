"""Field-level PHI encryption: a versioned AES-GCM keyring, keyed blind indexes, re-encryption.

Each protected value is stored as a self-describing token ``v<version>:<base64(nonce|ct|tag)>``,
sealed with AES-256-GCM under the data key of ``version``. The associated data is
``"<organization_id>|<table>|<column>|<row_id>|v<version>"``, so a token copied to another
organization, row, column or table — or relabelled with another version — fails to decrypt
instead of showing someone else's data.

Exact-match search goes through blind indexes: HMAC-SHA256 of a normalised value under a key
derived per table and column from a separate blind-index key, so equal values in two columns
index differently and rotating the data keys never changes an index. See ADR 0013 for the
reasoning, the limits (exact match only; equal values have equal indexes) and the rotation
procedure.

The keys come from configuration: the ``CLINICOS_PHI__*`` variables, or a key file
(``CLINICOS_PHI__KEY_FILE``) that a running keyring follows, so a rotation reaches every process
without a restart. Nothing here touches a database: the contexts store the tokens and indexes,
and :mod:`clinicos.platform.phi_rotation` walks the stored tokens to re-encrypt and count them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, overload

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from clinicos.config import (
    PHI_KEY_BYTES,
    Environment,
    PhiKeyFile,
    PhiKeyFileError,
    decode_phi_key,
    read_phi_key_file,
)
from clinicos.kernel.errors import DomainError
from clinicos.platform.observability.logging import get_logger
from clinicos.platform.observability.metrics import PHI_DECRYPTION_FAILURES

if TYPE_CHECKING:
    from sqlalchemy import MetaData

    from clinicos.config import Settings

__all__ = [
    "BLIND_INDEX_COLUMN",
    "ENCRYPTED_COLUMN",
    "KEY_FILE_CHECK_SECONDS",
    "PhiDecryptionFailed",
    "PhiKeyring",
    "PhiKeyringError",
    "PhiRow",
    "derive_development_blind_index_key",
    "derive_development_data_key",
    "encrypted_columns",
    "keys_from_settings",
    "normalise_digits",
    "normalise_text",
    "reencrypt_batch",
    "reencrypt_row",
    "token_version",
]

log = get_logger("clinicos.phi")

_NONCE_BYTES = 12
_TAG_BYTES = 16
# Versions up to 9 digits: the token stays parseable without a big-int surprise.
_TOKEN = re.compile(r"v([1-9][0-9]{0,8}):([A-Za-z0-9+/]+={0,2})\Z")
# Table and column names never contain the "|" that separates the associated-data parts.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")

# Column ``info`` markers: a model declares ``mapped_column(Text, info=dict(ENCRYPTED_COLUMN))``
# for a column holding PHI tokens, so key rotation and the plaintext-leak tests find it.
ENCRYPTED_COLUMN = MappingProxyType({"phi": "encrypted"})
BLIND_INDEX_COLUMN = MappingProxyType({"phi": "blind_index"})

PhiRow = tuple[str, str, Mapping[str, str | None]]
"""``(organization_id, row_id, {column: token or None})`` — one row's protected columns,
storage-agnostic."""


class PhiDecryptionFailed(DomainError):
    """A stored token did not decrypt: tampered, copied from another row/column/table, sealed
    under a key this keyring lacks, or not a token at all.

    Deliberately carries neither the token nor any plaintext; ``table``, ``column``, ``row_id``,
    ``key_version`` (None when unreadable) and ``reason`` say where to look."""

    status = 500
    code = "phi_decryption_failed"
    title = "Protected data could not be decrypted"

    def __init__(
        self, *, table: str, column: str, row_id: str, key_version: int | None, reason: str
    ) -> None:
        super().__init__(f"A protected field ({table}.{column}) could not be decrypted: {reason}.")
        self.table = table
        self.column = column
        self.row_id = row_id
        self.key_version = key_version
        self.reason = reason


class PhiKeyringError(ValueError):
    """Key material that cannot form a keyring; the message names the setting, never a key."""


def derive_development_data_key(secret_key: str, version: int) -> bytes:
    """Development-only data key for ``version``, derived (HKDF-SHA256) from the installation
    secret so that ``make run`` works with no PHI keys set. Production refuses derived keys."""
    return _hkdf(secret_key.encode("utf-8"), f"clinicos/phi/development-data-key/v{version}")


def derive_development_blind_index_key(secret_key: str) -> bytes:
    """Development-only blind-index key, derived from the installation secret."""
    return _hkdf(secret_key.encode("utf-8"), "clinicos/phi/development-blind-index-key")


def _hkdf(material: bytes, info: str) -> bytes:
    hkdf = HKDF(algorithm=SHA256(), length=PHI_KEY_BYTES, salt=None, info=info.encode("utf-8"))
    return hkdf.derive(material)


def normalise_text(value: str) -> str:
    """The form a value is blind-indexed in: Unicode NFKC, case-folded, NFKC again (case
    folding can denormalise), leading/trailing whitespace stripped and every run of whitespace
    collapsed to one space. ``"  ANA  María "`` and ``"ana maría"`` normalise alike."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())
    return " ".join(folded.split())


def normalise_digits(value: str) -> str:
    """Only the decimal digits of ``value``, as ASCII (any script's digits count). Callers pass
    phone numbers and national ids through this before indexing, so that ``+591 (2) 211-0000``
    and ``59122110000`` match."""
    return "".join(str(unicodedata.decimal(ch)) for ch in value if ch.isdecimal())


def token_version(token: str) -> int:
    """The key version a token was sealed under; ``ValueError`` if it is not a PHI token."""
    match = _TOKEN.match(token)
    if match is None:
        raise ValueError("not a PHI token")
    return int(match.group(1))


def _check_identifier(kind: str, name: str) -> None:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{kind} must be a lower-case SQL identifier")


def keys_from_settings(settings: Settings) -> tuple[PhiKeyFile, bool]:
    """The keys the variables give (ignoring any key file), and whether they are development
    keys: ``CLINICOS_PHI__KEYS`` and ``CLINICOS_PHI__BLIND_INDEX_KEY``, or — for whichever is
    unset — keys derived from ``CLINICOS_SECRET_KEY``, versions 1 up to the active version.
    ``clinicos keys add`` writes these into a new key file."""
    phi = settings.phi
    secret = settings.secret_key.get_secret_value()
    development = False
    keys: dict[int, bytes] = {}
    if phi.keys:
        for version, value in phi.keys.items():
            try:
                keys[version] = decode_phi_key(value.get_secret_value())
            except ValueError as exc:
                raise PhiKeyringError(f"CLINICOS_PHI__KEYS: version {version}: {exc}") from None
    else:
        development = True
        keys = {
            version: derive_development_data_key(secret, version)
            for version in range(1, phi.active_version + 1)
        }
    if phi.blind_index_key is not None and phi.blind_index_key.get_secret_value():
        try:
            blind = decode_phi_key(phi.blind_index_key.get_secret_value())
        except ValueError as exc:
            raise PhiKeyringError(f"CLINICOS_PHI__BLIND_INDEX_KEY: {exc}") from None
    else:
        development = True
        blind = derive_development_blind_index_key(secret)
    material = PhiKeyFile(active_version=phi.active_version, keys=keys, blind_index_key=blind)
    return material, development


KEY_FILE_CHECK_SECONDS = 1.0
"""How often (at most) a keyring backed by a key file looks at the file's ``stat``."""


@dataclass(frozen=True, eq=False)
class _Ring:
    """One consistent set of keys; a reload swaps the whole object."""

    aeads: Mapping[int, AESGCM]
    active_version: int
    blind_index_key: bytes
    development: bool
    column_keys: dict[tuple[str, str], bytes] = field(default_factory=dict)


def _build_ring(
    keys: Mapping[int, bytes], *, active_version: int, blind_index_key: bytes, development: bool
) -> _Ring:
    if not keys:
        raise PhiKeyringError("CLINICOS_PHI__KEYS: the keyring holds no data key")
    for version, key in keys.items():
        if version < 1:
            raise PhiKeyringError("CLINICOS_PHI__KEYS: key versions start at 1")
        if len(key) != PHI_KEY_BYTES:
            raise PhiKeyringError(f"CLINICOS_PHI__KEYS: version {version} is not 32 bytes")
    if active_version not in keys:
        raise PhiKeyringError(
            f"CLINICOS_PHI__ACTIVE_VERSION: version {active_version} is not in the keyring"
        )
    if len(blind_index_key) != PHI_KEY_BYTES:
        raise PhiKeyringError("CLINICOS_PHI__BLIND_INDEX_KEY: not 32 bytes")
    if any(hmac.compare_digest(blind_index_key, key) for key in keys.values()):
        raise PhiKeyringError("CLINICOS_PHI__BLIND_INDEX_KEY: equals a data key")
    return _Ring(
        aeads={version: AESGCM(key) for version, key in keys.items()},
        active_version=active_version,
        blind_index_key=blind_index_key,
        development=development,
    )


# A key file's identity: device, inode, size, modification and change times. An atomic
# replace (temp file + rename) always yields a new inode, so a rewrite is never missed.
_Signature = tuple[int, int, int, int, int]


def _signature(path: Path) -> _Signature | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


_MISSING = ("missing",)


class _KeyFileWatch:
    """Where a keyring's keys come from, and what of that file it has loaded."""

    def __init__(self, path: Path, interval: float, loaded: _Signature | None) -> None:
        self.path = path
        self.interval = interval
        self.loaded = loaded  # signature of the file the current keys came from; None: not it
        self.reported: object = None  # the failure last logged, so each is logged once
        self.next_check = time.monotonic() + interval
        self.lock = threading.Lock()


class PhiKeyring:
    """Data keys by version (one of them active) and the blind-index key.

    Build it once per process with :meth:`from_settings` and share it. With a key file
    (``CLINICOS_PHI__KEY_FILE``) it follows the file: at most every
    :data:`KEY_FILE_CHECK_SECONDS` it compares the file's ``stat`` with what it loaded and
    reloads on a change, and a token naming a version it lacks makes it look at once — so keys
    added, promoted or retired with ``clinicos keys …`` reach a running process without a
    restart. A reload swaps one immutable set of keys, so every call sees a consistent keyring;
    a file that does not load (half-written, bad JSON, invalid keys) keeps the previous keys and
    logs an error that names the file and the problem, never a key."""

    def __init__(
        self,
        keys: Mapping[int, bytes],
        *,
        active_version: int,
        blind_index_key: bytes,
        development: bool = False,
    ) -> None:
        self._ring = _build_ring(
            keys,
            active_version=active_version,
            blind_index_key=blind_index_key,
            development=development,
        )
        self._watch: _KeyFileWatch | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, check_interval: float = KEY_FILE_CHECK_SECONDS
    ) -> PhiKeyring:
        """The keyring the settings describe.

        With ``CLINICOS_PHI__KEY_FILE`` the keys come from that file and the keyring follows
        it (``check_interval`` seconds between looks); while the file does not exist yet,
        development keys are used outside production (production raises). Otherwise the keys
        are ``CLINICOS_PHI__KEYS``; with none set (or no blind-index key) it derives
        development-only keys from ``CLINICOS_SECRET_KEY`` — versions 1 up to the active
        version — and marks itself ``development``."""
        path = settings.phi.key_file
        if path is None:
            material, development = keys_from_settings(settings)
            return cls(
                material.keys,
                active_version=material.active_version,
                blind_index_key=material.blind_index_key,
                development=development,
            )
        signature = _signature(path)  # before reading: a change in between reloads again
        try:
            content = read_phi_key_file(path)
        except PhiKeyFileError as exc:
            if not exc.missing or settings.env is Environment.production:
                raise PhiKeyringError(f"CLINICOS_PHI__KEY_FILE: {exc}") from None
            material, _ = keys_from_settings(settings)
            ring = cls(
                material.keys,
                active_version=material.active_version,
                blind_index_key=material.blind_index_key,
                development=True,
            )
            signature = None
        else:
            ring = cls(
                content.keys,
                active_version=content.active_version,
                blind_index_key=content.blind_index_key,
            )
        ring._watch = _KeyFileWatch(path, check_interval, signature)
        return ring

    def __repr__(self) -> str:
        return (
            f"PhiKeyring(versions={list(self.versions)}, active_version={self.active_version}, "
            f"development={self.development})"
        )

    @property
    def active_version(self) -> int:
        return self._current().active_version

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(sorted(self._current().aeads))

    @property
    def development(self) -> bool:
        """True while the keys are derived from the installation secret (development only)."""
        return self._current().development

    @property
    def key_file(self) -> Path | None:
        """The key file this keyring follows, if any."""
        return None if self._watch is None else self._watch.path

    # -- following the key file ----------------------------------------------------------------

    def _current(self) -> _Ring:
        watch = self._watch
        if watch is not None and time.monotonic() >= watch.next_check:
            self.reload_if_changed()
        return self._ring

    def reload_if_changed(self, *, retry_failed: bool = True) -> bool:
        """Look at the key file now and load it if it changed; True when new keys were loaded.

        A file that does not load keeps the current keys (logged once per version of the
        file); with ``retry_failed=False`` such a file is not even read again until it
        changes."""
        watch = self._watch
        if watch is None or not watch.lock.acquire(blocking=False):
            return False
        try:
            watch.next_check = time.monotonic() + watch.interval
            signature = _signature(watch.path)
            if signature == watch.loaded:
                return False
            if signature is None:
                if watch.reported is not _MISSING:
                    log.error(
                        "phi_key_file_missing",
                        path=str(watch.path),
                        kept_versions=list(self.versions_loaded()),
                    )
                    watch.reported = _MISSING
                return False
            if not retry_failed and signature == watch.reported:
                return False
            try:
                content = read_phi_key_file(watch.path)
                ring = _build_ring(
                    content.keys,
                    active_version=content.active_version,
                    blind_index_key=content.blind_index_key,
                    development=False,
                )
            except (PhiKeyFileError, PhiKeyringError) as exc:
                if signature != watch.reported:
                    log.error(
                        "phi_key_file_reload_failed",
                        path=str(watch.path),
                        problem=str(exc),
                        kept_versions=list(self.versions_loaded()),
                    )
                    watch.reported = signature
                return False
            self._ring = ring
            watch.loaded = signature
            watch.reported = None
            log.info(
                "phi_keys_reloaded",
                path=str(watch.path),
                versions=sorted(ring.aeads),
                active_version=ring.active_version,
            )
            return True
        finally:
            watch.lock.release()

    def versions_loaded(self) -> tuple[int, ...]:
        """The versions held right now, without looking at the key file."""
        return tuple(sorted(self._ring.aeads))

    # -- encryption ----------------------------------------------------------------------------

    @overload
    def encrypt(
        self, plaintext: str, *, organization_id: str, table: str, column: str, row_id: str
    ) -> str: ...
    @overload
    def encrypt(
        self, plaintext: None, *, organization_id: str, table: str, column: str, row_id: str
    ) -> None: ...
    def encrypt(
        self, plaintext: str | None, *, organization_id: str, table: str, column: str, row_id: str
    ) -> str | None:
        """Seal ``plaintext`` for one cell under the active key; None stays None."""
        if plaintext is None:
            return None
        ring = self._current()
        version = ring.active_version
        nonce = secrets.token_bytes(_NONCE_BYTES)
        aad = _associated_data(organization_id, table, column, row_id, version)
        sealed = ring.aeads[version].encrypt(nonce, plaintext.encode("utf-8"), aad)
        return f"v{version}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    @overload
    def decrypt(
        self, token: str, *, organization_id: str, table: str, column: str, row_id: str
    ) -> str: ...
    @overload
    def decrypt(
        self, token: None, *, organization_id: str, table: str, column: str, row_id: str
    ) -> None: ...
    def decrypt(
        self, token: str | None, *, organization_id: str, table: str, column: str, row_id: str
    ) -> str | None:
        """Open a token sealed for this cell, under whichever key version it names (old versions
        keep working after rotation). Raises :class:`PhiDecryptionFailed`; None stays None."""
        if token is None:
            return None

        def failed(reason: str, version: int | None = None) -> PhiDecryptionFailed:
            # An alert metric: any increase means tampering, a missing key or a bug.
            PHI_DECRYPTION_FAILURES.labels(table=table, column=column).inc()
            return PhiDecryptionFailed(
                table=table, column=column, row_id=row_id, key_version=version, reason=reason
            )

        match = _TOKEN.match(token)
        if match is None:
            raise failed("not a PHI token")
        version = int(match.group(1))
        aead = self._current().aeads.get(version)
        if aead is None and self._watch is not None:
            # Sealed under a version added since the last look: another process (or the CLI)
            # may already use a freshly promoted key. A file that failed to load is not read
            # again for every such token, only on the periodic look.
            self.reload_if_changed(retry_failed=False)
            aead = self._ring.aeads.get(version)
        if aead is None:
            raise failed(f"key version {version} is not in the keyring", version)
        try:
            blob = base64.b64decode(match.group(2), validate=True)
        except (binascii.Error, ValueError):
            raise failed("token body is not base64", version) from None
        if len(blob) < _NONCE_BYTES + _TAG_BYTES:
            raise failed("token is truncated", version)
        aad = _associated_data(organization_id, table, column, row_id, version)
        try:
            plaintext = aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
        except InvalidTag:
            raise failed(
                "authentication failed (tampered, another cell's token, or a different key)",
                version,
            ) from None
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise failed("plaintext is not UTF-8", version) from None

    def needs_reencryption(self, token: str | None) -> bool:
        """True when the token is not under the active version — including a token that does not
        parse, so that the rotation job meets it and :meth:`reencrypt` reports it."""
        if token is None:
            return False
        try:
            return token_version(token) != self._current().active_version
        except ValueError:
            return True

    @overload
    def reencrypt(
        self, token: str, *, organization_id: str, table: str, column: str, row_id: str
    ) -> str: ...
    @overload
    def reencrypt(
        self, token: None, *, organization_id: str, table: str, column: str, row_id: str
    ) -> None: ...
    def reencrypt(
        self, token: str | None, *, organization_id: str, table: str, column: str, row_id: str
    ) -> str | None:
        """The same cell's value sealed under the active version; a token already under it is
        returned as it is. Raises :class:`PhiDecryptionFailed` like :meth:`decrypt`."""
        if token is None or not self.needs_reencryption(token):
            return token
        cell = {"organization_id": organization_id, "table": table, "column": column}
        plaintext = self.decrypt(token, **cell, row_id=row_id)
        return self.encrypt(plaintext, **cell, row_id=row_id)

    # -- blind indexes -------------------------------------------------------------------------

    @overload
    def blind_index(self, value: str, *, table: str, column: str) -> str | None: ...
    @overload
    def blind_index(self, value: None, *, table: str, column: str) -> None: ...
    def blind_index(self, value: str | None, *, table: str, column: str) -> str | None:
        """HMAC-SHA256 (hex) of :func:`normalise_text` of ``value`` under this column's key.

        Store it next to the token and search with ``WHERE <column>_index = :blind_index(query)``.
        None, and a value that normalises to nothing, have no index (None), so blank fields
        never match each other. Phone numbers and national ids: pass
        :func:`normalise_digits` of the value."""
        if value is None:
            return None
        normalised = normalise_text(value)
        if not normalised:
            return None
        key = self._column_key(self._current(), table, column)
        return hmac.new(key, normalised.encode("utf-8"), hashlib.sha256).hexdigest()

    @staticmethod
    def _column_key(ring: _Ring, table: str, column: str) -> bytes:
        cached = ring.column_keys.get((table, column))
        if cached is None:
            _check_identifier("table", table)
            _check_identifier("column", column)
            cached = _hkdf(ring.blind_index_key, f"clinicos/phi/blind-index/{table}/{column}")
            ring.column_keys[(table, column)] = cached
        return cached


def _associated_data(
    organization_id: str, table: str, column: str, row_id: str, version: int
) -> bytes:
    _check_identifier("table", table)
    _check_identifier("column", column)
    if not row_id or "|" in row_id:
        raise ValueError("row_id must be non-empty and free of '|'")
    if not organization_id or "|" in organization_id:
        raise ValueError("organization_id must be non-empty and free of '|'")
    return f"{organization_id}|{table}|{column}|{row_id}|v{version}".encode()


# -- key rotation ------------------------------------------------------------------------------


def reencrypt_row(
    row_id: str,
    columns: Mapping[str, str | None],
    keyring: PhiKeyring,
    *,
    organization_id: str,
    table: str,
) -> dict[str, str]:
    """The columns of one row whose tokens are not under the active key, re-sealed under it.

    Empty when nothing needs doing. Raises :class:`PhiDecryptionFailed` naming the row and
    column of a token that does not open."""
    changed: dict[str, str] = {}
    for column, token in columns.items():
        if token is not None and keyring.needs_reencryption(token):
            changed[column] = keyring.reencrypt(
                token, organization_id=organization_id, table=table, column=column, row_id=row_id
            )
    return changed


async def reencrypt_batch(
    rows: Iterable[PhiRow], keyring: PhiKeyring, *, table: str
) -> list[tuple[str, dict[str, str]]]:
    """Re-seal a batch of ``(organization_id, row_id, {column: token})`` under the active key.

    Returns only the rows that changed, each with only its changed columns, in input order —
    what the caller should write back. Write each one as a compare-and-set (``UPDATE … SET
    col = :new WHERE id = :id AND col = :old``) so that a value edited meanwhile is left alone
    for the next pass; a batch that is interrupted can simply be run again. The loop yields to
    the event loop between rows, so a job on the API's loop does not starve requests."""
    changed_rows: list[tuple[str, dict[str, str]]] = []
    for organization_id, row_id, columns in rows:
        changed = reencrypt_row(
            row_id, columns, keyring, organization_id=organization_id, table=table
        )
        if changed:
            changed_rows.append((row_id, changed))
        await asyncio.sleep(0)
    return changed_rows


def encrypted_columns(metadata: MetaData) -> dict[str, tuple[str, ...]]:
    """``{table: (encrypted column, …)}`` for every table of ``metadata`` that declares a
    column with the :data:`ENCRYPTED_COLUMN` marker — what key rotation walks."""
    found: dict[str, tuple[str, ...]] = {}
    for table in metadata.sorted_tables:
        columns = tuple(
            c.name for c in table.columns if c.info.get("phi") == ENCRYPTED_COLUMN["phi"]
        )
        if columns:
            found[table.name] = columns
    return found
