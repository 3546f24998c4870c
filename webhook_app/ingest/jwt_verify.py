"""Verification of Gong's "signed JWT header" webhooks.

Gong signs a JWT (RS256) with the automation rule's private key and puts it in the
Authorization header. The JWT binds the exact request body (``body_sha256``) and the URL the
rule posts to (``webhook_url``), so a captured token cannot be replayed with another body or
against another endpoint; ``exp`` bounds replays in time.

The token is parsed once, by the code below, and the signature is checked by PyJWT's own RS256
algorithm object (``RSAAlgorithm(SHA256).verify``: ``cryptography``'s RSASSA-PKCS1-v1_5 with
SHA-256); there is no crypto here. The parsing and claim checks answer what ``jwt.decode(token,
key, algorithms=["RS256"], leeway=30, options={"require": ["exp"], "verify_aud": False,
"verify_iss": False})`` answered, check for check, in the same order, with the same reasons (the
verifier before issue 16 was exactly that call, one per configured key). What it saves is PyJWT's
generic machinery around that one algorithm: option merging per call, stdlib JSON, a header and
claim pass written for every option. ``tests/security/test_jwt_equivalence.py`` checks the two
against each other (``tests/support/jwt_reference.py`` keeps the stock verifier) on generated
valid and broken tokens; the order of checks mirrored is PyJWT 2.15.1's.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
import json
import re
import time
import warnings
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm
from jwt.warnings import InsecureKeyLengthWarning

from webhook_app.keys import NormalisedUrl, normalise_url

ALGORITHM = "RS256"
_RS256 = RSAAlgorithm(RSAAlgorithm.SHA256)

# PyJWT's segment rule: the base64url alphabet, at most two "=" and only when they complete a
# multiple of 4, never a length of 1 mod 4, and canonical (unused trailing bits zero: the segment is
# what encoding its bytes gives back).
_BASE64URL = re.compile(rb"[A-Za-z0-9_-]*")
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_PAD = (b"", b"===", b"==", b"=")

# The claim checks PyJWT's decode runs with the options above: int() of iat/nbf/exp, with these
# failures (iat's one is InvalidIssuedAtError -> invalid_token, nbf's and exp's are DecodeError ->
# malformed_token).
_INT_ERRORS = (ValueError, TypeError, OverflowError)


class VerificationError(Exception):
    """Why a request was refused; ``reason`` is a fixed machine-readable token, safe for metrics labels."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _segment(segment: bytes) -> bytes | None:
    """The bytes of one base64url token segment, or None where PyJWT raises "Invalid ... padding"."""
    stripped = segment.rstrip(b"=")
    padding = len(segment) - len(stripped)
    if padding and (padding > 2 or len(segment) % 4):
        return None
    rem = len(stripped) % 4
    if rem == 1 or _BASE64URL.fullmatch(stripped) is None:
        return None
    try:
        decoded = binascii.a2b_base64(stripped.translate(_TO_STANDARD) + _PAD[rem])
    except binascii.Error:
        return None
    if binascii.b2a_base64(decoded, newline=False).translate(_TO_URLSAFE).rstrip(b"=") != stripped:
        return None
    return decoded


def _json_object(data: bytes) -> dict[str, Any] | None:
    """``data`` as a JSON object the way PyJWT reads header and payload (stdlib ``json.loads``), or
    None where PyJWT raises "Invalid ... string".

    orjson reads the usual shape: one flat object (no ``[``, a single ``{`` anywhere in the text)
    whose values are strings, integers within 64 bits, booleans or null. For that shape both parsers
    give the same dict. Everything else (orjson refused it, nesting, a float or an integer orjson
    widens to a float) is read by stdlib ``json`` exactly as PyJWT reads it: NaN, a UTF-8 BOM, UTF-16,
    lone surrogates and its own recursion limit included."""
    if b"[" not in data and data.count(b"{") == 1:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
        else:
            if type(obj) is dict and float not in map(type, obj.values()):
                return obj
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _crit_error(header: dict[str, Any]) -> bool:
    # PyJWT understands one critical extension, b64, and it must be present in the header.
    crit = header["crit"]
    if not isinstance(crit, list) or not crit:
        return True
    return any(not isinstance(ext, str) or ext != "b64" or ext not in header for ext in crit)


class JwtVerifier:
    def __init__(self, keys: list[RSAPublicKey], public_url: NormalisedUrl, leeway_seconds: int = 30) -> None:
        if not keys:
            raise ValueError("at least one public key is required")
        self._keys = list(keys)  # key objects already: PyJWT's prepare_key would hand them back as they are
        for key in self._keys:
            # PyJWT warned on every decode with a short key; once is enough (settings refuse < 2048 bits).
            message = _RS256.check_key_length(key)
            if message:
                warnings.warn(message, InsecureKeyLengthWarning, stacklevel=2)
        self._public_url = public_url
        self._leeway = leeway_seconds

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
        now = time.time()
        claims = self._decode(token, now)
        iat = claims.get("iat")
        if iat is not None and (not isinstance(iat, int | float) or iat > now + self._leeway):
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

    def _decode(self, token: str, now: float) -> dict[str, Any]:
        """PyJWT's decode, in its order: segments, header, alg, signature (each key), payload, claims."""
        raw = token.encode("utf-8")  # as PyJWT: a lone surrogate raises UnicodeEncodeError
        # PyJWT splits at the last "." and then the first: with more than three segments the payload
        # segment holds a ".", which no base64url segment (and no detached, empty payload) can.
        parts = raw.split(b".")
        if len(parts) != 3:
            raise VerificationError("malformed_token")
        header_segment, payload_segment, signature_segment = parts
        header_bytes = _segment(header_segment)
        if header_bytes is None:
            raise VerificationError("malformed_token")
        header = _json_object(header_bytes)
        if header is None:
            raise VerificationError("malformed_token")
        detached = header.get("b64", True) is False  # RFC 7797 unencoded payload: never valid here
        if detached:
            if payload_segment:
                raise VerificationError("malformed_token")
            payload_bytes = b""
        else:
            decoded = _segment(payload_segment)
            if decoded is None:
                raise VerificationError("malformed_token")
            payload_bytes = decoded
        signature = _segment(signature_segment)
        if signature is None:
            raise VerificationError("malformed_token")
        if "kid" in header and not isinstance(header["kid"], str):
            raise VerificationError("invalid_token")  # kid must be a string, and is otherwise ignored
        if "crit" in header and _crit_error(header):
            raise VerificationError("invalid_token")
        if detached:
            crit = header.get("crit") or []
            if not isinstance(crit, list) or "b64" not in crit:
                raise VerificationError("invalid_token")
            raise VerificationError("malformed_token")  # PyJWT wants the payload passed apart
        # The algorithm is pinned before any key is touched: "none", HS256 with the public key as the
        # secret, PS256/RS512 with the genuine key, a missing or empty alg never reach a verifier.
        if header.get("alg") != ALGORITHM:
            raise VerificationError("bad_algorithm")
        signing_input = raw[: len(header_segment) + 1 + len(payload_segment)]
        for key in self._keys:
            if _RS256.verify(signing_input, key, signature):
                break
        else:
            raise VerificationError("bad_signature")
        claims = _json_object(payload_bytes)
        if claims is None:
            raise VerificationError("malformed_token")
        self._check_times(claims, now)
        # PyJWT's default verify_sub / verify_jti: when present they must be strings.
        if "sub" in claims and not isinstance(claims["sub"], str):
            raise VerificationError("invalid_token")
        if "jti" in claims and not isinstance(claims["jti"], str):
            raise VerificationError("invalid_token")
        return claims

    def _check_times(self, claims: dict[str, Any], now: float) -> None:
        leeway = self._leeway
        if claims.get("exp") is None:
            raise VerificationError("missing_exp")
        if "iat" in claims:
            try:
                iat = int(claims["iat"])
            except _INT_ERRORS:
                raise VerificationError("invalid_token") from None
            if iat > now + leeway:
                raise VerificationError("iat_in_future")
        if "nbf" in claims:
            try:
                nbf = int(claims["nbf"])
            except _INT_ERRORS:
                raise VerificationError("malformed_token") from None
            if nbf > now + leeway:
                raise VerificationError("iat_in_future")
        try:
            exp = int(claims["exp"])
        except _INT_ERRORS:
            raise VerificationError("malformed_token") from None
        if exp <= now - leeway:
            raise VerificationError("expired")


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
