"""Helpers of the app fault scenarios: a webhook load that keeps running while a part is killed, and the
end-to-end check that every event a client was told was accepted is in Snowflake exactly once."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from tests.support.gong import GongSigner, call_payload
from tests.support.waiting import wait_for
from webhook_app.settings import AppSettings


class WebhookLoad:
    """Client threads posting signed Gong webhooks, each with a fresh call id, at about `rate` per
    second in total, until stopped. Every call id ends up in `accepted` (a 2xx answer: 202, or 200 for
    a duplicate) or in `failed` (no answer, a refused connection, or a 5xx), as Gong would see it."""

    def __init__(self, base_url: str, signer: GongSigner, prefix: str, threads: int = 4, rate: float = 150) -> None:
        self.base_url = base_url
        self.signer = signer
        self.prefix = prefix
        self.interval = threads / rate
        self.accepted: dict[str, int] = {}
        self.failed: set[str] = set()
        self.statuses: Counter[str] = Counter()
        self.retry_after_seen = 0
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> WebhookLoad:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    @property
    def sent(self) -> set[str]:
        with self._lock:
            return set(self.accepted) | self.failed

    def post(self, client: httpx.Client, call_id: str) -> tuple[str, int | None]:
        body, headers = self.signer.signed(call_payload(call_id))
        try:
            response = client.post("/webhooks/gong", content=body, headers=headers)
        except httpx.HTTPError as exc:
            return type(exc).__name__, None
        if response.status_code == 503 and response.headers.get("Retry-After"):
            with self._lock:
                self.retry_after_seen += 1
        return str(response.status_code), response.status_code

    def _record(self, call_id: str, outcome: str, status: int | None) -> None:
        with self._lock:
            self.statuses[outcome] += 1
            if status is not None and 200 <= status < 300:
                self.accepted[call_id] = status
                self.failed.discard(call_id)
            else:
                self.failed.add(call_id)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                call_id = f"{self.prefix}{next(self._ids):07d}"
                self._record(call_id, *self.post(client, call_id))
                next_at += self.interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_at = time.monotonic()  # behind (the server was slow or down): no burst to catch up

    def count_accepted(self) -> int:
        with self._lock:
            return len(self.accepted)

    def count_failed(self) -> int:
        with self._lock:
            return len(self.failed)

    def wait_accepted(self, n: int, timeout: float) -> None:
        wait_for(lambda: self.count_accepted() >= n, timeout, 0.05, f"{n} accepted webhooks")

    def wait_failed(self, n: int, timeout: float) -> None:
        wait_for(lambda: self.count_failed() >= n, timeout, 0.02, f"{n} webhooks without a 2xx answer")

    def retry_failed(self, timeout: float = 60) -> dict[str, int]:
        """What Gong does with a webhook that got no 2xx: send it again until it does. Returns the
        answers of the retries (200 means the first try had been stored after all)."""
        answers: dict[str, int] = {}
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            for call_id in sorted(self.failed):
                while True:
                    outcome, status = self.post(client, call_id)
                    if status is not None and 200 <= status < 300:
                        answers[call_id] = status
                        self._record(call_id, outcome, status)
                        break
                    assert time.monotonic() < deadline, f"retry of {call_id} still answered {outcome}"
                    time.sleep(0.2)
        return answers


def events_table(settings: AppSettings) -> str:
    return f"SOPHIA_AI.{settings.snowflake_schema}.GONG_WEBHOOK_EVENTS"


def wait_loaded(
    sf_query: Callable[..., list[tuple[Any, ...]]], settings: AppSettings, n: int, timeout: float
) -> None:
    def count() -> int:
        rows = sf_query(f"SELECT COUNT(*) FROM {events_table(settings)}")
        return int(rows[0][0]) if rows else 0

    wait_for(lambda: count() >= n, timeout, 0.5, f"{n} rows in Snowflake")


def assert_exactly_once(
    sf_query: Callable[..., list[tuple[Any, ...]]], settings: AppSettings, call_ids: set[str]
) -> None:
    """The events table holds one row per call id in `call_ids` and nothing else. The table has no
    enforced key (as on Snowflake), so an event the loader sent twice would be a second row here."""
    table = events_table(settings)
    total, distinct = sf_query(f"SELECT COUNT(*), COUNT(DISTINCT EVENT_ID) FROM {table}")[0]
    duplicated = sf_query(f"SELECT EVENT_ID, COUNT(*) FROM {table} GROUP BY EVENT_ID HAVING COUNT(*) > 1")
    assert total == distinct and duplicated == [], f"{total - distinct} duplicated rows: {duplicated[:10]}"
    rows = {str(r[0]): str(r[1]) for r in sf_query(f"SELECT CALL_ID, EVENT_ID FROM {table}")}
    missing, extra = call_ids - set(rows), set(rows) - call_ids
    assert not missing, f"{len(missing)} accepted events missing from Snowflake, e.g. {sorted(missing)[:5]}"
    assert not extra, f"{len(extra)} rows nobody sent, e.g. {sorted(extra)[:5]}"
    assert all(rows[c] == settings.event_id(c) for c in call_ids)


DATA_ERRORS = 'gong_webhook_snowflake_errors_total{kind="data"}'
REFUSED_LOG = '"message":"event refused by snowflake"'


def assert_no_data_errors(metrics_urls: Iterable[str] = (), logs: Iterable[str] = ()) -> None:
    """No statement was refused by Snowflake: the loaders' data-error counters (of the processes
    still running) are 0 and no log (also of killed processes) has a refused event. A refused
    MERGE would otherwise be bisected and retried, and could hide a duplicate the loader sent."""
    for url in metrics_urls:
        assert metric(url, DATA_ERRORS) == 0.0, f"{url}: Snowflake refused statements"
    for text in logs:
        assert REFUSED_LOG not in text, "a loader logged an event refused by Snowflake"


def app_ready(base_url: str) -> bool:
    try:
        return httpx.get(base_url + "/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def metric(base_url: str, sample: str) -> float:
    """One sample (`name{labels}` as exposed) of a Prometheus endpoint; 0 when absent or unreachable."""
    try:
        text = httpx.get(base_url + "/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
