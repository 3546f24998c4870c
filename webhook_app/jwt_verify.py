"""Verification of Gong's "signed JWT header" webhooks.

Gong signs a JWT (RS256) with the automation rule's private key and puts it in the
Authorization header. The JWT binds the exact request body (``body_sha256``) and the URL the
rule posts to (``webhook_url``), so a captured token cannot be replayed with another body or
against another endpoint; ``exp`` bounds replays in time.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from webhook_app.public_keys import NormalisedUrl, normalise_url

ALGORITHM = "RS256"


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

    def verify(self, authorization: str | None, body: bytes) -> dict[str, Any]:
        if not authorization:
            raise VerificationError("missing_token")
        token = authorization.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        claims = self._decode(token)
        iat = claims.get("iat")
        if iat is not None and (not isinstance(iat, int | float) or iat > time.time() + self._leeway):
            raise VerificationError("iat_in_future")
        body_hash = claims.get("body_sha256")
        expected = hashlib.sha256(body).hexdigest().encode()
        if not isinstance(body_hash, str) or not hmac.compare_digest(
            body_hash.strip().lower().encode("utf-8", "replace"), expected
        ):
            raise VerificationError("body_mismatch")
        url = claims.get("webhook_url")
        try:
            if not isinstance(url, str) or _normalised(url) != self._public_url:
                raise VerificationError("url_mismatch")
        except ValueError:
            raise VerificationError("url_mismatch") from None
        return claims

    def _decode(self, token: str) -> dict[str, Any]:
        # One parse per key tried (one in the usual single-key setup). PyJWT checks the header's alg
        # against ``algorithms`` before it touches any key, so "none", HS256-with-the-public-key and
        # friends never reach a verification routine (InvalidAlgorithmError below).
        for key in self._keys:
            try:
                claims: dict[str, Any] = jwt.decode(
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
