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

Nothing here touches a database: the records context stores the tokens and indexes, and its
rotation job drives :func:`reencrypt_batch` over real rows.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, overload

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from clinicos.config import PHI_KEY_BYTES, decode_phi_key
from clinicos.kernel.errors import DomainError
from clinicos.platform.observability.metrics import PHI_DECRYPTION_FAILURES

if TYPE_CHECKING:
    from sqlalchemy import MetaData

    from clinicos.config import Settings

__all__ = [
    "BLIND_INDEX_COLUMN",
    "ENCRYPTED_COLUMN",
    "PhiDecryptionFailed",
    "PhiKeyring",
    "PhiKeyringError",
    "PhiRow",
    "derive_development_blind_index_key",
    "derive_development_data_key",
    "encrypted_columns",
    "normalise_digits",
    "normalise_text",
    "reencrypt_batch",
    "reencrypt_row",
    "token_version",
]

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


class PhiKeyring:
    """Data keys by version (one of them active) and the blind-index key.

    Build it once per process with :meth:`from_settings`; it is immutable and safe to share."""

    def __init__(
        self,
        keys: Mapping[int, bytes],
        *,
        active_version: int,
        blind_index_key: bytes,
        development: bool = False,
    ) -> None:
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
        self._aeads = {version: AESGCM(key) for version, key in keys.items()}
        self._active_version = active_version
        self._blind_index_key = blind_index_key
        self._column_keys: dict[tuple[str, str], bytes] = {}
        self.development = development

    @classmethod
    def from_settings(cls, settings: Settings) -> PhiKeyring:
        """The keyring the settings describe. With no ``CLINICOS_PHI__KEYS`` (or no blind-index
        key) it derives development-only keys from ``CLINICOS_SECRET_KEY`` — versions 1 up to
        the active version — and marks itself ``development``."""
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
        return cls(
            keys, active_version=phi.active_version, blind_index_key=blind, development=development
        )

    def __repr__(self) -> str:
        return (
            f"PhiKeyring(versions={list(self.versions)}, active_version={self._active_version}, "
            f"development={self.development})"
        )

    @property
    def active_version(self) -> int:
        return self._active_version

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(sorted(self._aeads))

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
        version = self._active_version
        nonce = secrets.token_bytes(_NONCE_BYTES)
        aad = _associated_data(organization_id, table, column, row_id, version)
        sealed = self._aeads[version].encrypt(nonce, plaintext.encode("utf-8"), aad)
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
        aead = self._aeads.get(version)
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
            return token_version(token) != self._active_version
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
        key = self._column_key(table, column)
        return hmac.new(key, normalised.encode("utf-8"), hashlib.sha256).hexdigest()

    def _column_key(self, table: str, column: str) -> bytes:
        cached = self._column_keys.get((table, column))
        if cached is None:
            _check_identifier("table", table)
            _check_identifier("column", column)
            cached = _hkdf(self._blind_index_key, f"clinicos/phi/blind-index/{table}/{column}")
            self._column_keys[(table, column)] = cached
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
