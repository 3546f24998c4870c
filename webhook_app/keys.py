"""Key material from the settings, parsed: Gong's webhook public keys, the public webhook URL, and
the Snowflake private key.

Shared layer: ``settings`` checks these at start-up, ingest verifies with the public keys, the
Snowflake sink signs in with the private key. Pure parsing: no I/O, no settings, no other app module.

Gong's UI shows the key as bare base64 of a DER SubjectPublicKeyInfo; operators may also
paste PEM. Several keys can be configured (several rules, or overlap during rotation).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import NamedTuple
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]*PUBLIC KEY-----.*?-----END [A-Z ]*PUBLIC KEY-----", re.DOTALL)


class PublicKeyError(ValueError):
    pass


def parse_public_keys(raw: str) -> list[RSAPublicKey]:
    """PEM blocks anywhere in ``raw``, plus bare base64 DER keys separated by commas/newlines."""
    keys: list[RSAPublicKey] = []
    for block in _PEM_BLOCK.findall(raw):
        keys.append(_rsa(load_pem_public_key(block.encode()), len(keys) + 1))
    rest = _PEM_BLOCK.sub(",", raw)
    for part in re.split(r"[,\s]+", rest):
        if not part:
            continue
        try:
            der = base64.b64decode(part, validate=True)
        except (binascii.Error, ValueError):
            raise PublicKeyError(f"key #{len(keys) + 1} is neither PEM nor base64 DER") from None
        try:
            key = load_der_public_key(der)
        except ValueError:
            raise PublicKeyError(f"key #{len(keys) + 1} is not a DER SubjectPublicKeyInfo") from None
        keys.append(_rsa(key, len(keys) + 1))
    if not keys:
        raise PublicKeyError("no public key found")
    return keys


def _rsa(key: object, index: int) -> RSAPublicKey:
    # Gong signs RS256 only; refusing other key types up front rules out algorithm confusion.
    if not isinstance(key, RSAPublicKey):
        raise PublicKeyError(f"key #{index} is not an RSA key")
    if key.key_size < 2048:
        raise PublicKeyError(f"key #{index} is shorter than 2048 bits")
    return key


class NormalisedUrl(NamedTuple):
    scheme: str
    host: str
    port: int
    path: str


_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_url(url: str) -> NormalisedUrl:
    """Scheme/host/port/path only: query, fragment, case of host and a trailing slash do not matter."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise ValueError("has an invalid port") from None
    path = re.sub(r"/+", "/", parts.path or "/").rstrip("/") or "/"
    return NormalisedUrl(scheme, parts.hostname.lower().rstrip("."), port, path)


def parse_public_url(url: str) -> NormalisedUrl:
    return normalise_url(url)


def load_private_key(pem: str) -> bytes:
    """PKCS#8 DER bytes, the form the Snowflake connector's ``private_key`` accepts."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
