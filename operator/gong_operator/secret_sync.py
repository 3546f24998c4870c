"""Credential sync: read the source (a Secret or a Pulumi ESC environment), check the required keys.

The result carries values only in ``data`` (bytes, never logged); everything meant for humans —
``reason`` and ``message`` — names keys, never values.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gong_operator.kube import KubeError
from gong_operator.pulumi_esc import EscDeadlineExceeded, EscError, EscSource, parse_duration
from gong_operator.spec import GongWebhookSpec
from webhook_app import contract

# SecretsSynced reasons.
SYNCED = "Synced"
SOURCE_MISSING = "SourceMissing"
KEYS_MISSING = "KeysMissing"
ACCESS_TOKEN_MISSING = "AccessTokenMissing"  # noqa: S105 - a condition reason
ESC_ERROR = "PulumiEscError"
ESC_TIMEOUT = "PulumiEscTimeout"  # the ESC read ran past its total deadline
SOURCE_INVALID = "SourceInvalid"
SOURCE_NOT_SHARED = "SourceNotShared"
FORBIDDEN = "Forbidden"
ESC_URL_NOT_ALLOWED = "PulumiEscUrlNotAllowed"  # not https, or the host is not on --esc-allowed-host
SOURCE_UNREADABLE = "SourceUnreadable"  # the API server answered the read with an error

# A Secret in another namespace is copied only when its own metadata lists the GongWebhook's
# namespace here. Whoever can edit that Secret decides who may read it through the operator;
# creating a GongWebhook alone never does (the operator can read Secrets everywhere, its users cannot).
ALLOW_SYNC_TO_ANNOTATION = "gong.sophia-ai.com/allow-sync-to"

# Writing Secrets is granted per namespace (config/rbac/namespaced/secrets_writer_role_binding.yaml),
# not cluster-wide: these names appear in the condition that says a binding is missing.
SECRETS_WRITER_ROLE = "gong-webhook-operator-secrets-writer"
SECRETS_WRITER_BINDING = "gong-webhook-operator-secrets-writer"


@dataclass(frozen=True)
class SyncResult:
    ok: bool
    reason: str
    message: str
    source: str  # "secret" | "pulumiEsc"
    data: Mapping[str, bytes] | None = field(default=None, repr=False)
    missing: tuple[str, ...] = ()
    transient: bool = False  # worth retrying soon (a server error), not only at the next resync

    @property
    def summary(self) -> str:
        """Short text for the SECRETS printer column."""
        if self.ok:
            return SYNCED
        if self.missing:
            return f"{self.reason}: {','.join(self.missing)}"
        return self.reason


def decode_secret_data(secret: Mapping[str, Any]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
    return out


def check(data: Mapping[str, bytes], required: tuple[str, ...], *, source: str, where: str) -> SyncResult:
    """Keep the contract's credential keys; fail naming the required ones that are absent or empty."""
    kept = {k: v for k, v in data.items() if k in contract.SECRET_KEYS}
    missing = tuple(k for k in required if not kept.get(k))
    if missing:
        return SyncResult(False, KEYS_MISSING, f"{where} lacks required keys: {', '.join(missing)}", source,
                          missing=missing)
    return SyncResult(True, SYNCED, f"{len(kept)} keys synced from {where}", source, data=kept)


SecretGetter = Callable[[str, str], Mapping[str, Any] | None]


class _Unreadable(Exception):
    def __init__(self, result: SyncResult) -> None:
        super().__init__(result.message)
        self.result = result


def _read(get_secret: SecretGetter, namespace: str, name: str, source: str) -> Mapping[str, Any] | None:
    """A Secret, or None when absent. Any other API answer (403 from RBAC, 5xx from an overloaded or
    restarting server, 429) becomes a SecretsSynced=False result rather than an exception: the reconcile
    must still write status, and it must not look like a crash. The API server's message names the
    resource and the verb, never data."""
    try:
        return get_secret(namespace, name)
    except KubeError as e:
        transient = e.transient
        raise _Unreadable(SyncResult(
            False, SOURCE_UNREADABLE,
            f"Secret {namespace}/{name} could not be read: {e.status} {e.reason}"
            + (f" ({e.message})" if e.message else "") + ("; retrying" if transient else ""),
            source, transient=transient)) from None


def sync_from_secret(spec: GongWebhookSpec, namespace: str, get_secret: SecretGetter,
                     synced_name: str = "") -> SyncResult:
    ref = spec.secrets.source_ref
    assert ref is not None
    ns = ref.namespace or namespace
    where = f"Secret {ns}/{ref.name}"
    if ns == namespace and ref.name == synced_name:
        return SyncResult(False, SOURCE_INVALID, f"{where} is the synced Secret itself; point sourceRef elsewhere",
                          "secret")
    secret = _read(get_secret, ns, ref.name, "secret")
    if ns != namespace and (secret is None or namespace not in allowed_namespaces(secret)):
        # One answer for "absent" and "not shared": the operator must not tell a namespace that
        # cannot read a Secret whether it exists.
        return SyncResult(False, SOURCE_NOT_SHARED,
                          f"{where} is in another namespace and does not exist or does not list namespace "
                          f"{namespace} in its annotation {ALLOW_SYNC_TO_ANNOTATION}", "secret")
    if secret is None:
        return SyncResult(False, SOURCE_MISSING, f"{where} not found", "secret")
    return check(decode_secret_data(secret), spec.required_secret_keys, source="secret", where=where)


def allowed_namespaces(secret: Mapping[str, Any]) -> frozenset[str]:
    """Namespaces a source Secret's owner allows to sync it (comma-separated names, no wildcards)."""
    raw = ((secret.get("metadata") or {}).get("annotations") or {}).get(ALLOW_SYNC_TO_ANNOTATION) or ""
    return frozenset(part.strip() for part in str(raw).split(",") if part.strip())


def secret_sources(spec: Mapping[str, Any], namespace: str) -> tuple[tuple[str, str], ...]:
    """(namespace, name) of every Secret whose change must trigger this GongWebhook, read from the raw
    ``spec`` (camelCase, as in a watch event: it need not parse yet): the ``secrets.sourceRef`` (in
    its own namespace or the GongWebhook's) and the Pulumi ESC access-token Secret."""
    secrets = spec.get("secrets") or {}
    found: set[tuple[str, str]] = set()
    ref = secrets.get("sourceRef") or {}
    if ref.get("name"):
        found.add((str(ref.get("namespace") or namespace), str(ref["name"])))
    esc_ref = (secrets.get("pulumiEsc") or {}).get("accessTokenSecretRef") or {}
    if esc_ref.get("name"):
        found.add((namespace, str(esc_ref["name"])))
    return tuple(sorted(found))


def write_forbidden(namespace: str, secret_name: str, source: str) -> SyncResult:
    """The synced Secret could not be written: the namespace lacks the operator's secrets-writer binding."""
    return SyncResult(
        False, FORBIDDEN,
        f"the operator may not write Secret {namespace}/{secret_name}: namespace {namespace} needs the RoleBinding "
        f"{SECRETS_WRITER_BINDING} to ClusterRole {SECRETS_WRITER_ROLE} for the operator's ServiceAccount "
        "(config/rbac/namespaced/secrets_writer_role_binding.yaml)", source)



def sync_from_esc(spec: GongWebhookSpec, namespace: str, get_secret: SecretGetter, esc: EscSource) -> SyncResult:
    cfg = spec.secrets.pulumi_esc
    assert cfg is not None
    refused = esc.refusal(cfg.api_url)
    if refused:  # checked before the token is even read
        return SyncResult(False, ESC_URL_NOT_ALLOWED, refused, "pulumiEsc")
    tok_ref = cfg.access_token_secret_ref
    token_secret = _read(get_secret, namespace, tok_ref.name, "pulumiEsc")
    token = decode_secret_data(token_secret or {}).get(tok_ref.key)
    if not token:
        return SyncResult(False, ACCESS_TOKEN_MISSING,
                          f"access token Secret {namespace}/{tok_ref.name} key {tok_ref.key} not found", "pulumiEsc")
    where = f"Pulumi ESC environment {cfg.organization}/{cfg.project}/{cfg.environment}"
    try:
        values = esc.read(cfg, token.decode(), max_age=parse_duration(spec.secrets.refresh_interval))
    except EscError as e:
        if isinstance(e, EscDeadlineExceeded):
            reason = ESC_TIMEOUT
        else:
            reason = SOURCE_MISSING if e.status == 404 else ESC_ERROR
        return SyncResult(False, reason, f"{where}: {e.safe_message}", "pulumiEsc")
    return check(values, spec.required_secret_keys, source="pulumiEsc", where=where)


def sync(spec: GongWebhookSpec, namespace: str, get_secret: SecretGetter, esc: EscSource,
         synced_name: str = "") -> SyncResult:
    """``synced_name`` is the operator's own ``<name>-credentials`` Secret, which cannot be a source."""
    try:
        if spec.secrets.source_ref is not None:
            return sync_from_secret(spec, namespace, get_secret, synced_name)
        if spec.secrets.pulumi_esc is not None:
            return sync_from_esc(spec, namespace, get_secret, esc)
    except _Unreadable as e:
        return e.result
    return SyncResult(False, SOURCE_INVALID, "spec.secrets names no source", "none")
