from __future__ import annotations

import base64
from typing import Any

from gong_operator.pulumi_esc import EscError, EscSource
from gong_operator.secret_sync import (
    ACCESS_TOKEN_MISSING,
    ESC_ERROR,
    ESC_TIMEOUT,
    ESC_URL_NOT_ALLOWED,
    KEYS_MISSING,
    SOURCE_INVALID,
    SOURCE_MISSING,
    SOURCE_NOT_SHARED,
    sync,
)
from tests.support.esc_standin import TricklingServer, standin_source
from tests.support.specs import FULL, NoEsc, getter, make_spec


def _secret(data: dict[str, str]) -> dict[str, Any]:
    return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def test_synced_keeps_only_contract_keys():
    r = sync(make_spec(), "team", getter({("team", "src"): _secret(FULL)}), NoEsc())
    assert r.ok and r.summary == "Synced"
    assert r.data is not None and set(r.data) == set(FULL) - {"UNRELATED"}
    assert r.data["GONG_API_SECRET"] == b"topsecret"


def test_missing_keys_are_named_and_values_never_appear():
    data = {k: v for k, v in FULL.items() if k not in ("SNOWFLAKE_USER", "GONG_WEBHOOK_PUBLIC_KEYS")}
    r = sync(make_spec(), "team", getter({("team", "src"): _secret(data)}), NoEsc())
    assert not r.ok and r.reason == KEYS_MISSING and r.data is None
    assert r.missing == ("GONG_WEBHOOK_PUBLIC_KEYS", "SNOWFLAKE_USER")  # the jwt auth key is always required
    assert r.summary == "KeysMissing: GONG_WEBHOOK_PUBLIC_KEYS,SNOWFLAKE_USER"
    assert "topsecret" not in r.message and "topsecret" not in repr(r)


def test_empty_value_counts_as_missing_and_url_key_mode_needs_its_key():
    spec = make_spec(gong={"authMode": "urlKey"})
    r = sync(spec, "team", getter({("team", "src"): _secret({**FULL, "SNOWFLAKE_USER": ""})}), NoEsc())
    assert r.missing == ("GONG_WEBHOOK_SECRETS", "SNOWFLAKE_USER")


def test_source_missing_other_namespace_and_self_reference():
    r = sync(make_spec(secrets={"sourceRef": {"name": "src"}}), "team", getter({}), NoEsc())
    assert r.reason == SOURCE_MISSING and "team/src" in r.message
    # Another namespace: not telling "absent" from "not shared" (tests/security/test_secret_sources.py).
    r = sync(make_spec(secrets={"sourceRef": {"name": "src", "namespace": "vault"}}), "team", getter({}), NoEsc())
    assert r.reason == SOURCE_NOT_SHARED and "vault/src" in r.message
    r = sync(make_spec(secrets={"sourceRef": {"name": "gw-credentials"}}), "team",
             getter({("team", "gw-credentials"): _secret(FULL)}), NoEsc(), synced_name="gw-credentials")
    assert r.reason == SOURCE_INVALID


class FakeEsc(EscSource):
    def __init__(self, result: dict[str, bytes] | EscError) -> None:
        super().__init__()
        self.result = result
        self.tokens: list[str] = []

    def read(self, cfg: Any, token: str, *, max_age: float = 0.0) -> dict[str, bytes]:
        self.tokens.append(token)
        if isinstance(self.result, EscError):
            raise self.result
        return self.result


ESC_SPEC = {"pulumiEsc": {"organization": "acme", "environment": "prod",
                          "accessTokenSecretRef": {"name": "pulumi", "key": "token"}}}


def test_esc_source_reads_token_from_the_referenced_secret():
    esc = FakeEsc({k: v.encode() for k, v in FULL.items()})
    r = sync(make_spec(secrets=ESC_SPEC), "team", getter({("team", "pulumi"): _secret({"token": "pul-xyz"})}), esc)
    assert r.ok and r.source == "pulumiEsc" and esc.tokens == ["pul-xyz"]


def test_esc_without_token_or_failing():
    r = sync(make_spec(secrets=ESC_SPEC), "team", getter({}), FakeEsc({}))
    assert r.reason == ACCESS_TOKEN_MISSING
    r = sync(make_spec(secrets=ESC_SPEC), "team", getter({("team", "pulumi"): _secret({"token": "t"})}),
             FakeEsc(EscError(404, "open environment returned HTTP 404")))
    assert r.reason == SOURCE_MISSING
    r = sync(make_spec(secrets=ESC_SPEC), "team", getter({("team", "pulumi"): _secret({"token": "t"})}),
             FakeEsc(EscError(500, "open environment returned HTTP 500")))
    assert r.reason == ESC_ERROR and "HTTP 500" in r.message


def test_esc_past_its_deadline_is_its_own_reason_without_the_token():
    with TricklingServer(interval=0.2) as server:
        spec = make_spec(secrets={"pulumiEsc": {**ESC_SPEC["pulumiEsc"], "apiUrl": server.url}})
        r = sync(spec, "team", getter({("team", "pulumi"): _secret({"token": "pul-deadline-token"})}),
                 standin_source(timeout=1.0, deadline=1.0))
    assert not r.ok and r.reason == ESC_TIMEOUT and r.summary == "PulumiEscTimeout"
    assert r.message == ("Pulumi ESC environment acme/default/prod: "
                         "Pulumi ESC API did not answer within the 1s deadline")
    assert "pul-deadline-token" not in repr(r)


def test_esc_api_url_must_be_https():
    # Issue 10 #6: the operator sends its ESC token to apiUrl, which the GongWebhook's author chooses.
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"apiUrl|api_url"):
        make_spec(secrets={"pulumiEsc": {**ESC_SPEC["pulumiEsc"], "apiUrl": "http://api.pulumi.com"}})


def test_esc_host_outside_the_operators_allowlist_gets_no_token():
    from tests.support.esc_standin import EscState, serve, standin_source

    state = EscState(token="pul-allow-token", org="acme", project="default", env="prod", properties={})
    with serve(state) as url:
        spec = make_spec(secrets={"pulumiEsc": {**ESC_SPEC["pulumiEsc"], "apiUrl": url}})
        store = getter({("team", "pulumi"): _secret({"token": "pul-allow-token"})})
        r = sync(spec, "team", store, standin_source(allowed_hosts=("api.pulumi.com",)))
        assert not r.ok and r.reason == ESC_URL_NOT_ALLOWED
        assert r.message == ("spec.secrets.pulumiEsc.apiUrl: host 127.0.0.1 is not one the operator may send its "
                             "Pulumi ESC token to (allowed: api.pulumi.com); the platform team adds hosts with "
                             "gong-webhook-operator --esc-allowed-host 127.0.0.1")
        assert state.requests == [], "nothing may be sent to a host that is not allowed"
        # The default allowlist is Pulumi Cloud only.
        assert EscSource().allowed_hosts == ("api.pulumi.com",)
        r = sync(spec, "team", store, standin_source(allowed_hosts=("api.pulumi.com", "127.0.0.1")))
        assert r.reason != ESC_URL_NOT_ALLOWED and state.requests


def test_a_stored_http_esc_url_is_refused_at_run_time():
    # Objects stored before the schema said https only are not re-validated by the API server.
    spec = make_spec(secrets=ESC_SPEC)
    cfg = spec.secrets.pulumi_esc
    assert cfg is not None
    old = cfg.model_construct(**{**dict(cfg), "api_url": "http://api.pulumi.com"})
    assert EscSource().refusal(old.api_url) is not None and "https" in (EscSource().refusal(old.api_url) or "")
