"""The operator's rendered configuration is what the app starts with.

The app reads exactly the ConfigMap and Secret the operator renders (the Deployment's ``envFrom``),
so these tests build that environment the way the pods get it and run the app's own start-up checks
over it: ``webhook_app.cli.main(["--check-config"])`` is what ``gong-webhook-app`` runs before it
serves (``load_settings`` plus the loader's checks when the loader runs in process) and exits 2 on a
``ConfigError``. Validating with ``AppSettings.model_validate`` alone once hid that the README's
sample crash-looped (no ``GONG_WEBHOOK_PUBLIC_URL`` in JWT mode, a placeholder public key).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from gong_operator import app_config
from gong_operator import children as ch
from gong_operator import spec as s
from gong_operator.secret_sync import decode_secret_data, sync
from tests.support.specs import EXAMPLE_PUBLIC_KEY, make_spec
from webhook_app import cli, contract

SAMPLES = Path(__file__).resolve().parents[2] / "config" / "samples"
OWNER = ch.Owner(name="gong", namespace="team", uid="0000-uid")


def _sample_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _as_stored(secret: Mapping[str, Any]) -> dict[str, Any]:
    """What the API server stores for a Secret written with ``stringData``."""
    data = dict(secret.get("data") or {})
    data.update({k: base64.b64encode(str(v).encode()).decode() for k, v in (secret.get("stringData") or {}).items()})
    return {"metadata": secret["metadata"], "data": data}


def rendered_env(kids: list[dict[str, Any]]) -> dict[str, str]:
    """The container environment the rendered Deployment gets: its envFrom sources, in order (a later
    source wins, as in the kubelet), resolved against the rendered ConfigMap and Secret."""
    by_name = {(m["kind"], m["metadata"]["name"]): m for m in kids}
    dep = by_name[("Deployment", OWNER.name)]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert "env" not in container  # everything comes from envFrom
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        if "configMapRef" in source:
            cm = by_name.get(("ConfigMap", source["configMapRef"]["name"]))
            assert cm is not None, "envFrom names a ConfigMap the operator does not render"
            env.update(cm["data"])
        else:
            secret = by_name[("Secret", source["secretRef"]["name"])]
            env.update({k: base64.b64decode(v).decode() for k, v in secret["data"].items()})
    return env


def _render(spec: s.GongWebhookSpec, source: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What one reconcile renders: the credentials sync, then the desired children."""
    result = sync(spec, OWNER.namespace, lambda ns, name: _as_stored(source), esc=None,  # type: ignore[arg-type]
                  synced_name=ch.credentials_name(OWNER))
    assert result.ok, f"the sample Secret does not satisfy the sample GongWebhook: {result.message}"
    return ch.desired_children(spec, OWNER, secret_data=result.data, content_hash="h",
                               service_monitor_served=False)


def app_start_check(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the app's console script start-up checks over exactly ``env`` (nothing else inherited)."""
    monkeypatch.setattr("os.environ", dict(env))
    code = cli.main(["--check-config"])
    return code, capsys.readouterr().err.strip()


def _sample_cases() -> Iterator[Any]:
    docs = _sample_docs()
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    for gw in (d for d in docs if d["kind"] == s.KIND):
        for mode in ("jwt", "urlKey"):
            yield pytest.param(gw, secrets, mode, id=f"{gw['metadata']['name']}-{mode}")


@pytest.mark.parametrize(("gw", "secrets", "mode"), list(_sample_cases()))
def test_every_sample_renders_a_config_the_app_starts_with(
    gw: dict[str, Any], secrets: dict[str, dict[str, Any]], mode: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    spec_body = {**gw["spec"], "gong": {**gw["spec"].get("gong", {}), "authMode": mode}}
    spec = s.GongWebhookSpec.model_validate(spec_body)
    source = secrets[spec.secrets.source_ref.name]  # type: ignore[union-attr]
    env = rendered_env(_render(spec, source))
    code, err = app_start_check(env, monkeypatch, capsys)
    assert code == 0, f"gong-webhook-app would exit {code} with the sample ({mode}): {err}"
    # ... and the operator's own pre-rollout check agrees.
    assert app_config.refusal(env) is None


def test_sample_gongwebhook_is_checked_in_both_modes() -> None:
    ids = [p.id for p in _sample_cases()]
    assert ids == ["gong-jwt", "gong-urlKey"]


def test_the_jwt_url_is_the_public_endpoint_derived_from_the_ingress() -> None:
    spec = make_spec(ingress={"enabled": True, "host": "hooks.example.com", "tlsSecretName": "tls"})
    data = ch.config_data(spec)
    assert data[contract.GONG_WEBHOOK_PUBLIC_URL] == "https://hooks.example.com/webhooks/gong"
    assert data[contract.GONG_WEBHOOK_PUBLIC_URL] == ch.endpoint(spec, OWNER)
    explicit = make_spec(ingress={"enabled": True, "host": "hooks.example.com"},
                         gong={"publicUrl": "https://gong.example.org/webhooks/gong"})
    assert ch.config_data(explicit)[contract.GONG_WEBHOOK_PUBLIC_URL] == "https://gong.example.org/webhooks/gong"


# An environment the app refuses -> the same message from the operator's check as from the app.
GOOD_SECRET = {"GONG_WEBHOOK_PUBLIC_KEYS": EXAMPLE_PUBLIC_KEY, "GONG_API_KEY": "k", "GONG_API_SECRET": "s",
               "SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_USER": "u", "SNOWFLAKE_PASSWORD": "p"}
JWT = {"gong": {"publicUrl": "https://hooks.example.com/webhooks/gong"}}


@pytest.mark.parametrize(("spec_overrides", "secret", "setting"), [
    (JWT, GOOD_SECRET, None),
    (JWT, {**GOOD_SECRET, "GONG_WEBHOOK_PUBLIC_KEYS": "example-public-key"}, contract.GONG_WEBHOOK_PUBLIC_KEYS),
    ({}, GOOD_SECRET, contract.GONG_WEBHOOK_PUBLIC_URL),
    (JWT, {k: v for k, v in GOOD_SECRET.items() if k != "SNOWFLAKE_PASSWORD"}, contract.SNOWFLAKE_PASSWORD),
    ({**JWT, "extraConfig": {"RUN_LOADER_IN_PROCESS": "false"}},
     {k: v for k, v in GOOD_SECRET.items() if k != "SNOWFLAKE_PASSWORD"}, None),
    ({**JWT, "extraConfig": {"LOADER_BATCH_SIZE": "0"}}, GOOD_SECRET, contract.LOADER_BATCH_SIZE),
    ({"gong": {"authMode": "urlKey"}}, {**GOOD_SECRET, "GONG_WEBHOOK_SECRETS": " , "}, contract.GONG_WEBHOOK_SECRETS),
])
def test_operator_check_agrees_with_the_app_start_up(
    spec_overrides: dict[str, Any], secret: dict[str, str], setting: str | None,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    spec = make_spec(**spec_overrides)
    env = {**ch.config_data(spec), **secret}
    code, err = app_start_check(env, monkeypatch, capsys)
    refusal = app_config.refusal(env)
    if setting is None:
        assert (code, refusal) == (0, None), err
        return
    assert code == 2
    assert refusal == err
    assert setting in refusal
    for value in secret.values():  # the message names the setting, never a value
        assert len(value) < 4 or value not in refusal


def test_typed_fields_reach_the_app_unchanged() -> None:
    spec = make_spec(
        gong={"rateLimit": 1.5, "burst": 4, "dailyLimit": 500, "enrichmentEnabled": False,
              "enrichmentExtensive": True, "publicUrl": "https://hooks.example.com/webhooks/gong"},
        redis={"url": "redis://r:6380/2", "stream": "gong:x"},
        snowflake={"warehouse": "WH", "database": "DB", "schema": "SC", "role": "LOADER"},
        extraConfig={"SNOWFLAKE_HOST": "localhost", "SNOWFLAKE_PORT": "8443", "SNOWFLAKE_PROTOCOL": "http"},
    )
    settings = app_config.load({**ch.config_data(spec), **GOOD_SECRET})
    assert (settings.gong_api_rate_limit, settings.gong_api_burst_limit) == (1.5, 4)
    assert settings.gong_api_daily_limit == 500
    assert settings.gong_enrichment_enabled is False
    assert settings.gong_enrichment_extensive is True
    assert settings.gong_webhook_public_url == "https://hooks.example.com/webhooks/gong"
    assert (settings.redis_url, settings.redis_stream) == ("redis://r:6380/2", "gong:x")
    assert (settings.snowflake_warehouse, settings.snowflake_database, settings.snowflake_schema,
            settings.snowflake_role) == ("WH", "DB", "SC", "LOADER")
    endpoint = (settings.snowflake_host, settings.snowflake_port, settings.snowflake_protocol)
    assert endpoint == ("localhost", 8443, "http")


def test_defaults_render_the_app_defaults_for_the_gong_api_budget() -> None:
    # Existing GongWebhooks (no dailyLimit / enrichmentExtensive) get Gong's quota and no extensive fetch.
    spec = make_spec(extraConfig={"GONG_API_DAY_START_SECONDS": "28800"}, **JWT)
    settings = app_config.load({**ch.config_data(spec), **GOOD_SECRET})
    assert settings.gong_api_daily_limit == 10000
    assert settings.gong_enrichment_extensive is False
    assert settings.gong_api_day_start_seconds == 28800


def test_rendered_keys_are_all_contract_names() -> None:
    data = ch.config_data(make_spec(extraConfig={"NOT_A_SETTING": "x", "LOADER_BATCH_SIZE": "200"}))
    assert set(data) <= contract.CONFIG_KEYS
    assert data["LOADER_BATCH_SIZE"] == "200"


def test_decoded_sample_secret_keys_are_contract_credentials() -> None:
    for doc in _sample_docs():
        if doc["kind"] == "Secret":
            assert set(decode_secret_data(_as_stored(doc))) <= contract.SECRET_KEYS
