"""Verification of Gong's "signed JWT header" webhooks.

Gong signs a JWT (RS256) with the automation rule's private key and puts it in the
Authorization header. The JWT binds the exact request body (``body_sha256``) and the URL the
rule posts to (``webhook_url``), so a captured token cannot be replayed with another body or
against another endpoint; ``exp`` bounds replays in time.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
import re
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.utils import base64url_decode, base64url_encode

from webhook_app.keys import NormalisedUrl, normalise_url

ALGORITHM = "RS256"


# PyJWT 2.15 checks the base64url alphabet of every token segment with a per-byte Python generator,
# which was half the cost of verifying a Gong token in the ingest profile (bench/README.md). The
# subclass below does the same checks, in the same order with the same errors, with one regex. It
# overrides a private method, so it is used only with the PyJWT version it was checked against;
# any other version gets stock PyJWT (slower, same result).
_FAST_JWS_PYJWT_VERSIONS = frozenset({"2.15.1"})
_BASE64URL = re.compile(rb"[A-Za-z0-9_-]*")


class _FastJWS(jwt.PyJWS):
    @staticmethod
    def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
        padding = 0
        stripped = segment
        while stripped.endswith(b"="):
            stripped = stripped[:-1]
            padding += 1
            if padding > 2:
                raise jwt.DecodeError(f"Invalid {name} padding")
        if padding and len(segment) % 4 != 0:
            raise jwt.DecodeError(f"Invalid {name} padding")
        if len(stripped) % 4 == 1 or _BASE64URL.fullmatch(stripped) is None:
            raise jwt.DecodeError(f"Invalid {name} padding")
        try:
            decoded = base64url_decode(stripped)
        except (TypeError, binascii.Error) as err:
            raise jwt.DecodeError(f"Invalid {name} padding") from err
        if base64url_encode(decoded) != stripped:
            raise jwt.DecodeError(f"Invalid {name} padding")
        return decoded


def _decoder() -> jwt.PyJWT:
    decoder = jwt.PyJWT()
    if jwt.__version__ in _FAST_JWS_PYJWT_VERSIONS and isinstance(getattr(decoder, "_jws", None), jwt.PyJWS):
        decoder._jws = _FastJWS(options=decoder._jws.options)
    return decoder


class VerificationError(Exception):
    """Why a request was refused; ``reason`` is a fixed machine-readable token, safe for metrics labels."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JwtVerifier:
    def __init__(self, keys: list[RSAPublicKey], public_url: NormalisedUrl, leeway_seconds: int = 30) -> None:
        if not keys:
            raise ValueError("at least one public key is required")
        self._keys = keys
        self._public_url = public_url
        self._leeway = leeway_seconds
        self._jwt = _decoder()

    def verify(self, authorization: str | None, body: bytes) -> dict[str, Any]:
        claims = self.verify_token(authorization)
        self.verify_body(claims, body)
        return claims

    def verify_token(self, authorization: str | None) -> dict[str, Any]:
        """Everything that needs only the header: signature, ``exp``, ``iat``, ``webhook_url``. The
        API runs this before it reads the body, so an unauthenticated caller cannot make it read
        and hash up to MAX_BODY_BYTES."""
        if not authorization:
            raise VerificationError("missing_token")
        token = authorization.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        claims = self._decode(token)
        iat = claims.get("iat")
        if iat is not None and (not isinstance(iat, int | float) or iat > time.time() + self._leeway):
            raise VerificationError("iat_in_future")
        url = claims.get("webhook_url")
        try:
            if not isinstance(url, str) or _normalised(url) != self._public_url:
                raise VerificationError("url_mismatch")
        except ValueError:
            raise VerificationError("url_mismatch") from None
        return claims

    @staticmethod
    def verify_body(claims: dict[str, Any], body: bytes) -> None:
        """The body is the one the verified token was signed for (``body_sha256``, constant time)."""
        body_hash = claims.get("body_sha256")
        expected = hashlib.sha256(body).hexdigest().encode()
        if not isinstance(body_hash, str) or not hmac.compare_digest(
            body_hash.strip().lower().encode("utf-8", "replace"), expected
        ):
            raise VerificationError("body_mismatch")

    def _decode(self, token: str) -> dict[str, Any]:
        # One parse per key tried (one in the usual single-key setup). PyJWT checks the header's alg
        # against ``algorithms`` before it touches any key, so "none", HS256-with-the-public-key and
        # friends never reach a verification routine (InvalidAlgorithmError below).
        for key in self._keys:
            try:
                claims: dict[str, Any] = self._jwt.decode(
                    token,
                    key,
                    algorithms=[ALGORITHM],
                    leeway=self._leeway,
                    options={"require": ["exp"], "verify_aud": False, "verify_iss": False},
                )
            except jwt.InvalidAlgorithmError:
                raise VerificationError("bad_algorithm") from None
            except jwt.InvalidSignatureError:
                continue
            except jwt.DecodeError:
                raise VerificationError("malformed_token") from None
            except jwt.ExpiredSignatureError:
                raise VerificationError("expired") from None
            except jwt.ImmatureSignatureError:
                raise VerificationError("iat_in_future") from None
            except jwt.MissingRequiredClaimError:
                raise VerificationError("missing_exp") from None
            except jwt.InvalidTokenError:
                raise VerificationError("invalid_token") from None
            return claims
        raise VerificationError("bad_signature")


@functools.lru_cache(maxsize=64)
def _normalised(url: str) -> NormalisedUrl:
    # Only reached with claims whose signature verified, so the cache holds the few URLs the
    # configured signers use; a ValueError is not cached and is raised again each time.
    return normalise_url(url)


def verify_url_key(presented: str, keys: list[str]) -> None:
    """Constant-time check of the key embedded in the path; every configured key is compared."""
    ok = False
    raw = presented.encode("utf-8", "replace")
    for key in keys:
        ok |= hmac.compare_digest(raw, key.encode())
    if not ok:
        raise VerificationError("wrong_url_key")
