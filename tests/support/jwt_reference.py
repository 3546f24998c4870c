"""The reference the tight JWT verifier is checked against: the verifier as it was before it
(``webhook_app/ingest/jwt_verify.py`` up to issue 16), built on stock ``jwt.decode``.

Same options (RS256 only, ``exp`` required, 30 s leeway, audience and issuer not checked), same
exception-to-reason mapping, same ``iat`` / ``webhook_url`` / ``body_sha256`` checks, one full
``jwt.decode`` per configured key. It uses PyJWT's module-level ``jwt.decode`` untouched (no
subclass, no private method replaced), so it is what "stock PyJWT" answers.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.utils import base64url_decode, base64url_encode

from webhook_app.ingest.jwt_verify import VerificationError
from webhook_app.keys import NormalisedUrl, normalise_url

ALGORITHM = "RS256"
OPTIONS: dict[str, Any] = {"require": ["exp"], "verify_aud": False, "verify_iss": False}


class StockJwtVerifier:
    """Same interface as ``webhook_app.ingest.jwt_verify.JwtVerifier``; slow and obviously stock."""

    def __init__(self, keys: list[RSAPublicKey], public_url: NormalisedUrl, leeway_seconds: int = 30) -> None:
        if not keys:
            raise ValueError("at least one public key is required")
        self._keys = keys
        self._public_url = public_url
        self._leeway = leeway_seconds
        self._jwt: Any = jwt

    def verify(self, authorization: str | None, body: bytes) -> dict[str, Any]:
        claims = self.verify_token(authorization)
        self.verify_body(claims, body)
        return claims

    def verify_token(self, authorization: str | None) -> dict[str, Any]:
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
            if not isinstance(url, str) or normalise_url(url) != self._public_url:
                raise VerificationError("url_mismatch")
        except ValueError:
            raise VerificationError("url_mismatch") from None
        return claims

    @staticmethod
    def verify_body(claims: dict[str, Any], body: bytes) -> None:
        body_hash = claims.get("body_sha256")
        expected = hashlib.sha256(body).hexdigest().encode()
        if not isinstance(body_hash, str) or not hmac.compare_digest(
            body_hash.strip().lower().encode("utf-8", "replace"), expected
        ):
            raise VerificationError("body_mismatch")

    def _decode(self, token: str) -> dict[str, Any]:
        for key in self._keys:
            try:
                claims: dict[str, Any] = self._jwt.decode(
                    token, key, algorithms=[ALGORITHM], leeway=self._leeway, options=OPTIONS,
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


class _RegexSegmentJWS(jwt.PyJWS):
    """PyJWT 2.15's base64url segment check with one regex instead of a per-byte generator."""

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
        if len(stripped) % 4 == 1 or re.fullmatch(rb"[A-Za-z0-9_-]*", stripped) is None:
            raise jwt.DecodeError(f"Invalid {name} padding")
        try:
            decoded = base64url_decode(stripped)
        except (TypeError, binascii.Error) as err:
            raise jwt.DecodeError(f"Invalid {name} padding") from err
        if base64url_encode(decoded) != stripped:
            raise jwt.DecodeError(f"Invalid {name} padding")
        return decoded


class PreviousJwtVerifier(StockJwtVerifier):
    """What the app ran between the first ingest profile and issue 16, for the micro-benchmark only:
    the stock verifier with PyJWT's segment check replaced by one regex (a private method overridden,
    same answers). Not a reference: the equivalence tests compare against ``StockJwtVerifier``."""

    def __init__(self, keys: list[RSAPublicKey], public_url: NormalisedUrl, leeway_seconds: int = 30) -> None:
        super().__init__(keys, public_url, leeway_seconds)
        decoder = jwt.PyJWT()
        decoder._jws = _RegexSegmentJWS(options=decoder._jws.options)
        self._jwt = decoder
