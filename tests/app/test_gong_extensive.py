"""Parsing and paging of Gong's /v2/calls/extensive answers (and the transcript answers, which page
the same way): what is keyed by which call id, which cursor is followed, what is skipped."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.gong_api_standin import EXTENSIVE_PATH, GongApiStandIn
from tests.support.net import free_port
from webhook_app.enrich.gong_client import CONTENT_SELECTOR, GongClient, extensive_page, transcripts_page
from webhook_app.enrich.rate_limit import RedisTokenBucket
from webhook_app.metrics import Metrics
from webhook_app.redis_conn import make_client

ACCESS_KEY = "gong-access-key-ext-1357"
ACCESS_SECRET = "gong-access-secret-ext-2468"

# Shaped like Gong's documented answer: requestId, records (with a cursor while more pages follow),
# calls[] with metaData and the parts the contentSelector asked for.
PAGE: dict[str, Any] = {
    "requestId": "4al018gzaztcr8nbukw",
    "records": {"totalRecords": 5, "currentPageSize": 3, "currentPageNumber": 0, "cursor": "eyJhbGciOiJIUzI1NiJ9.x"},
    "calls": [
        {"metaData": {"id": "7782342274025937895", "title": "Kick-off"},
         "parties": [{"id": "1", "affiliation": "Internal"}], "content": {"topics": [{"name": "Pricing"}]}},
        {"metaData": {"id": 1234567890123, "title": "Integer id"}},
        {"metaData": {"title": "no id: cannot be keyed"}},
        {"parties": []},
        "not an object",
    ],
}


def test_extensive_page_keys_whole_call_objects_by_metadata_id() -> None:
    calls, cursor = extensive_page(PAGE)
    assert cursor == "eyJhbGciOiJIUzI1NiJ9.x"
    assert set(calls) == {"7782342274025937895", "1234567890123"}
    first = calls["7782342274025937895"]
    assert first["parties"] == [{"id": "1", "affiliation": "Internal"}]  # the whole object, not just metaData
    assert first["content"]["topics"][0]["name"] == "Pricing"


@pytest.mark.parametrize("records", [None, {}, {"cursor": ""}, {"cursor": None}, {"cursor": 17}, "garbage"])
def test_last_page_has_no_cursor(records: Any) -> None:
    page = {"calls": [{"metaData": {"id": "1"}}], "records": records}
    calls, cursor = extensive_page(page)
    assert cursor is None and set(calls) == {"1"}


@pytest.mark.parametrize("page", [{}, {"calls": None}, {"calls": []}])
def test_page_without_calls_is_empty(page: dict[str, Any]) -> None:
    assert extensive_page(page) == ({}, None)


def test_transcripts_page_keys_by_call_id() -> None:
    page = {"records": {"cursor": "c2"}, "callTranscripts": [
        {"callId": "9", "transcript": [{"speakerId": "1"}]}, {"callId": "10"}, {"transcript": []}, {"callId": ""},
    ]}
    transcripts, cursor = transcripts_page(page)
    assert cursor == "c2"
    assert transcripts == {"9": [{"speakerId": "1"}], "10": []}


@pytest.fixture
def gong_api():
    api = GongApiStandIn(ACCESS_KEY, ACCESS_SECRET, rate_per_second=100, burst=100, page_size=2)
    url = api.start(free_port())
    yield api, url
    api.stop()


async def test_extensive_follows_the_cursor_through_every_page(make_settings, gong_api) -> None:
    api, url = gong_api
    settings = make_settings()
    client = make_client(settings)
    gong = GongClient(url, ACCESS_KEY, ACCESS_SECRET,
                      RedisTokenBucket(client, f"{settings.redis_stream}:bucket", 100.0, 100), Metrics())
    ids = ["101", "102", "103", "104", "105"]
    try:
        calls = await gong.extensive(ids)
        nothing = await gong.extensive([])  # the stand-in, like Gong, answers 404 when nothing matches
    finally:
        await gong.close()
        await client.aclose()
    assert sorted(calls) == ids
    assert all(calls[i]["metaData"]["id"] == i and calls[i]["parties"] for i in ids)
    assert nothing == {}
    bodies = [b for b, e in zip(api.log.bodies, api.log.endpoints, strict=True) if e == EXTENSIVE_PATH]
    assert [b.get("cursor") for b in bodies] == [None, "2", "4", None]  # three pages, then the empty filter
    assert all(b["filter"] == {"callIds": ids} and b["contentSelector"] == CONTENT_SELECTOR for b in bodies[:3])
    assert CONTENT_SELECTOR["exposedFields"]["media"] is False  # media URLs expire in 8 h and need another scope
