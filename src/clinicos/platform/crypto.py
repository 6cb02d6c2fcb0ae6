"""Sealing small secrets at rest (TOTP seeds, signing keys) with AES-GCM under a derived key."""

from __future__ import annotations

import base64
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"v1"


class SealBroken(Exception):
    """Ciphertext was altered, moved to another row, or sealed under another secret."""


class SecretBox:
    """AES-256-GCM with a key derived (HKDF-SHA256) from the installation secret and a purpose,
    so one purpose's ciphertext never opens under another. ``aad`` binds a value to its row."""

    def __init__(self, installation_secret: str, purpose: str) -> None:
        hkdf = HKDF(algorithm=SHA256(), length=32, salt=None, info=b"clinicos/" + purpose.encode())
        self._aead = AESGCM(hkdf.derive(installation_secret.encode("utf-8")))

    def seal(self, plaintext: bytes, *, aad: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, plaintext, _VERSION + aad.encode())
        return _VERSION.decode() + ":" + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, token: str, *, aad: str) -> bytes:
        version, _, body = token.partition(":")
        if version.encode() != _VERSION:
            raise SealBroken("unknown seal version")
        blob = base64.b64decode(body)
        try:
            return self._aead.decrypt(blob[:12], blob[12:], _VERSION + aad.encode())
        except InvalidTag as exc:
            raise SealBroken("seal does not open") from exc
