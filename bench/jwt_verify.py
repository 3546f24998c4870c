"""Micro-benchmark of the JWT check alone: ``python -m bench.jwt_verify [--seconds N] [--out PATH]``.

Per token, in one process and one run: the baseline is the stock path (``tests/support/jwt_reference.py``,
one stock ``jwt.decode`` per key, the same options and reasons), against the tight path
(``webhook_app/ingest/jwt_verify.py``, what the app runs) and the floor both contain, PyJWT's RS256
``verify`` of the same signing input and signature. A second baseline is the app's verifier just before
issue 16 (``PreviousJwtVerifier``: stock ``jwt.decode`` with PyJWT's segment check done by one regex).
Tokens are the bench's ~2.4 KB Gong payloads (``bench.common.bench_payload``), each signed once before
any measurement; every verification must succeed. The four are measured in interleaved rounds
(stock, previous, tight, floor, stock, ...) so a change of machine load hits all of them; the
per-token time of each is the median over its rounds.
Writes ``bench/results/jwt_verify.json`` and prints a table. A few seconds; no servers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import common
from tests.support.gong import GongSigner, new_private_key
from tests.support.jwt_reference import PreviousJwtVerifier, StockJwtVerifier
from webhook_app.ingest import jwt_verify
from webhook_app.ingest.jwt_verify import JwtVerifier
from webhook_app.keys import parse_public_url

OUT = Path(__file__).resolve().parent / "results" / "jwt_verify.json"
TOKENS = 200


def _tokens(count: int) -> tuple[Any, list[str]]:
    key = new_private_key()
    signer = GongSigner(key, common.PUBLIC_URL, ttl_seconds=3600)
    rng = random.Random(16)
    return key, [signer.token(orjson.dumps(common.bench_payload(f"16{i:09d}", rng))) for i in range(count)]


def _round(fn: Callable[[Any], object], items: list[Any]) -> float:
    """Seconds per item for one pass over ``items``."""
    started = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - started) / len(items)


def run(seconds: float) -> dict[str, Any]:
    key, tokens = _tokens(TOKENS)
    public_url = parse_public_url(common.PUBLIC_URL)
    stock = StockJwtVerifier([key.public_key()], public_url)
    previous = PreviousJwtVerifier([key.public_key()], public_url)
    tight = JwtVerifier([key.public_key()], public_url)
    pub = key.public_key()
    rs256 = jwt_verify._RS256
    signed = []
    for token in tokens:
        signing_input, _, signature = token.encode().rpartition(b".")
        raw_signature = jwt_verify._segment(signature)
        assert raw_signature is not None
        signed.append((signing_input, raw_signature))
        assert stock.verify_token(token) == previous.verify_token(token) == tight.verify_token(token)

    def floor(item: tuple[bytes, bytes]) -> None:
        if not rs256.verify(item[0], pub, item[1]):
            raise AssertionError("signature did not verify")

    paths: dict[str, tuple[Callable[[Any], object], list[Any]]] = {
        "stock": (stock.verify_token, tokens), "previous": (previous.verify_token, tokens),
        "tight": (tight.verify_token, tokens), "rsa_verify": (floor, signed),
    }
    for fn, items in paths.values():  # warm-up: caches, the URL normalisation
        _round(fn, items[:20])
    rounds: dict[str, list[float]] = {name: [] for name in paths}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or len(rounds["stock"]) < 3:
        for name, (fn, items) in paths.items():
            rounds[name].append(_round(fn, items))
    us = {name: round(statistics.median(values) * 1e6, 2) for name, values in rounds.items()}
    return {
        "tokens": TOKENS,
        "rounds": len(rounds["stock"]),
        "stock_us_per_token": us["stock"],
        "previous_us_per_token": us["previous"],
        "tight_us_per_token": us["tight"],
        "rsa_verify_us_per_token": us["rsa_verify"],
        "stock_overhead_us": round(us["stock"] - us["rsa_verify"], 2),
        "previous_overhead_us": round(us["previous"] - us["rsa_verify"], 2),
        "tight_overhead_us": round(us["tight"] - us["rsa_verify"], 2),
        "ratio": round(us["tight"] / us["stock"], 3),  # tight / stock per token (lower is better)
        "speedup": round(us["stock"] / us["tight"], 2),
        "ratio_vs_previous": round(us["tight"] / us["previous"], 3),
        "overhead_ratio": round((us["tight"] - us["rsa_verify"]) / (us["stock"] - us["rsa_verify"]), 3),
    }


def table(result: dict[str, Any]) -> str:
    r = result["jwt_verify"]
    m = result["machine"]
    rows = [
        ("stock jwt.decode path µs/token (baseline)", r["stock_us_per_token"]),
        ("previous app path µs/token (regex segments, 2nd baseline)", r["previous_us_per_token"]),
        ("tight path µs/token", r["tight_us_per_token"]),
        ("RS256 verify alone µs/token (floor)", r["rsa_verify_us_per_token"]),
        ("stock overhead beyond RS256 µs", r["stock_overhead_us"]),
        ("previous overhead beyond RS256 µs", r["previous_overhead_us"]),
        ("tight overhead beyond RS256 µs", r["tight_overhead_us"]),
        ("tight / stock per token", r["ratio"]),
        ("tight overhead / stock overhead", r["overhead_ratio"]),
        ("tight / previous per token", r["ratio_vs_previous"]),
    ]
    lines = ["| metric | value |", "|---|---:|", *(f"| {label} | {value:g} |" for label, value in rows), ""]
    lines.append(f"{r['tokens']} tokens x {r['rounds']} rounds each, {result['run']['finished']}; {m['cores']} cores "
                 f"({m['cpu']}), Python {m['python']}, load average (1 min) at start {m['loadavg_1m_at_start']}, "
                 f"at end {result['run']['loadavg_1m_at_end']}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring time (after signing)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"machine": common.machine()}
    result["jwt_verify"] = run(args.seconds)
    result["run"] = {"finished": datetime.now(UTC).isoformat(timespec="seconds"),
                     "loadavg_1m_at_end": round(os.getloadavg()[0], 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
