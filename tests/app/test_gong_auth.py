"""Gong API 401/403 are systemic (issue 10 #6b): with a wrong or revoked key pair every call would get
the same answer, so enrichment holds its batch (pending, claimed), backs off, counts and flags it
(gong_webhook_gong_api_auth_failures_total, gong_webhook_gong_api_auth_failing) and logs one ERROR,
instead of acknowledging each call's enrichment as failed for good. Once the Secret is fixed and the
pods restart, the held batch is fetched."""

from __future__ import annotations

import logging
import time

from tests.support.app import wait_rows
from tests.support.gong import call_payload
from tests.support.gong_api_standin import GONG_ACCESS_KEY, GONG_ACCESS_SECRET
from tests.support.waiting import wait_for
from webhook_app import streams


def _sample(app, name: str) -> float:
    for line in app.client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


def test_refused_credentials_hold_enrichment_until_they_are_fixed(
    make_settings, start_app, signer, gong_standin, redis_server, event_count, sf_query, caplog
):
    api, api_url = gong_standin(rate_per_second=20.0, burst=20)
    common = {"GONG_ENRICHMENT_ENABLED": "true", "GONG_API_BASE_URL": api_url, "GONG_API_KEY": GONG_ACCESS_KEY}
    wrong = make_settings(**common, GONG_API_SECRET="a-revoked-secret-9Jd2")
    r = redis_server.client()
    enrich = streams.enrich_stream(wrong.redis_stream)
    call_ids = [f"7300{i}" for i in range(3)]
    with caplog.at_level(logging.INFO, logger="webhook_app"):
        app = start_app(wrong)
        for call_id in call_ids:
            assert app.post(*signer.signed(call_payload(call_id))).status_code == 202
        wait_rows(event_count, wrong, 3)  # the events themselves load as usual
        wait_for(lambda: api.log.unauthorised >= 2, 20, what="the enricher to try (and retry) with the wrong key")
        time.sleep(1.0)
        assert _sample(app, "gong_webhook_gong_api_auth_failing") == 1.0
        assert _sample(app, "gong_webhook_gong_api_auth_failures_total") >= 2
        # Nothing given up on: every call id is still in the enrichment stream; the batch in hand is
        # pending (and claimed), the rest undelivered behind it.
        assert r.xlen(enrich) == 3
        assert r.xpending(enrich, streams.ENRICH_GROUP)["pending"] >= 1
        refused = [rec for rec in caplog.records if rec.getMessage().startswith("Gong API refuses the credentials")]
        assert len(refused) == 1 and refused[0].levelno == logging.ERROR  # once, not once per attempt
        assert not [rec for rec in caplog.records if rec.getMessage() == "enrichment failed permanently"]
        app.stop()

        # The Secret is fixed; the pod restarts under its old consumer name and fetches the held batch.
        fixed = make_settings(migrate_schema=False, **common, GONG_API_SECRET=GONG_ACCESS_SECRET)
        fixed_app = start_app(fixed)
        table = f"SOPHIA_AI.{fixed.snowflake_schema}.GONG_CALL_TRANSCRIPTS"
        wait_for(lambda: sf_query(f"SELECT COUNT(*) FROM {table}") == [(3,)], 20, what="the held transcripts")
        wait_for(lambda: r.xlen(enrich) == 0, 10, what="the enrichment entries acknowledged")
        assert _sample(fixed_app, "gong_webhook_gong_api_auth_failing") == 0.0
    assert sorted(row[0] for row in sf_query(f"SELECT CALL_ID FROM {table}")) == call_ids
