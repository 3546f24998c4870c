"""Realistic Gong webhook payloads, signed the way Gong signs them ("signed JWT header" mode).

Gong signs an RS256 JWT with the automation rule's private key; its claims carry the SHA-256
of the exact body and the URL the rule posts to, plus an expiry. The public key is shown in
Gong's UI as bare base64 of a DER SubjectPublicKeyInfo, which ``public_key_b64`` reproduces.
"""

from __future__ import annotations

import base64
import hashlib
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def new_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_key_b64(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def public_key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def call_payload(
    call_id: str | None = None,
    *,
    title: str | None = None,
    duration: int | None = None,
    is_test: bool = False,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """A webhook body shaped like Gong's: callData mirrors the /v2/calls/extensive record."""
    rng = rng or random.Random()
    call_id = call_id or str(rng.randrange(10**17, 10**18))
    started = datetime(2026, 11, 2, 9, 0, tzinfo=UTC) + timedelta(minutes=rng.randrange(0, 60 * 24 * 20))
    user_id = str(rng.randrange(10**17, 10**18))
    return {
        "callData": {
            "metaData": {
                "id": call_id,
                "url": f"https://app.gong.io/call?id={call_id}",
                "title": title if title is not None else f"Discovery call {call_id[-4:]}",
                "scheduled": started.isoformat(),
                "started": started.isoformat(),
                "duration": duration if duration is not None else rng.randrange(60, 3600),
                "primaryUserId": user_id,
                "direction": "Conference",
                "system": "Zoom",
                "scope": "External",
                "media": "Video",
                "language": "eng",
                "workspaceId": "6225318488383730000",
                "isPrivate": False,
            },
            "context": [
                {"system": "Salesforce", "objects": [{"objectType": "Opportunity", "objectId": "0065g00000XyZ"}]}
            ],
            "parties": [
                {"id": "1", "name": "Ada Seller", "userId": user_id, "affiliation": "Internal"},
                {"id": "2", "name": "Bob Buyer", "emailAddress": "bob@example.com", "affiliation": "External"},
            ],
            "content": {
                "topics": [{"name": "Pricing", "duration": 120}],
                "trackers": [{"id": "t1", "name": "Competitors", "count": 2}],
            },
        },
        "isTest": is_test,
    }


class GongSigner:
    """Signs bodies like one Gong automation rule posting to ``webhook_url``."""

    def __init__(self, private_key: rsa.RSAPrivateKey, webhook_url: str, ttl_seconds: int = 300) -> None:
        self.private_key = private_key
        self.webhook_url = webhook_url
        self.ttl_seconds = ttl_seconds

    def claims(self, body: bytes, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "webhook_url": self.webhook_url,
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "iat": now,
            "exp": now + self.ttl_seconds,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, body: bytes, **overrides: Any) -> str:
        return jwt.encode(self.claims(body, **overrides), self.private_key, algorithm="RS256")

    def headers(self, body: bytes, *, bearer: bool = False, **overrides: Any) -> dict[str, str]:
        token = self.token(body, **overrides)
        return {"Authorization": f"Bearer {token}" if bearer else token, "Content-Type": "application/json"}

    def signed(self, payload: dict[str, Any], **overrides: Any) -> tuple[bytes, dict[str, str]]:
        body = orjson.dumps(payload)
        return body, self.headers(body, **overrides)
