"""The tight JWT path (``webhook_app/ingest/jwt_verify.py``) answers what stock ``jwt.decode`` answered.

The reference is ``tests/support/jwt_reference.py``: the verifier as it was before issue 16, one stock
``jwt.decode(..., algorithms=["RS256"], leeway=30, options={"require": ["exp"], ...})`` per key and
the same reason mapping. For every generated token both verify the same Authorization value and body
and must agree: accepted with the same claims, or refused with the same reason (the reason *is* the
class here: accept.py sends it in the 401 and counts it in the metrics), or the same exception type.

Generated tokens (hypothesis): genuine ones, signed by the first or the second configured key
(rotation), and broken ones in every part: header (alg none/None/HS256/HS512/PS256/RS512/empty/
missing/non-string, kid, crit, b64, key-locating headers, non-JSON, NaN, BOM, UTF-16, lone surrogates,
arrays, nesting, floats, big integers, duplicate keys), claims (exp/iat/nbf missing, null, past,
future, strings, floats, booleans, lists, huge; sub/jti types; webhook_url other/normalised/invalid/
non-string; body_sha256 wrong/upper-case/padded/non-string; audience and issuer present), signature
(unknown key, HMAC keyed with the public key as PEM, DER and base64 text, RS512/PS256 with the genuine
key, empty, truncated, a flipped bit, random), segments (canonical and broken "=" padding signed or
not, non-canonical last character, characters outside the alphabet, non-ASCII, extra, missing and
empty segments, huge tokens) and the Authorization value (Bearer spellings, whitespace, empty).
``JWT_EQUIVALENCE_EXAMPLES`` sets the number of whole tokens (default 20 000).
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import os
import random
import time
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support.gong import call_payload, new_private_key, public_key_b64
from tests.support.jwt_reference import StockJwtVerifier
from webhook_app.ingest import jwt_verify
from webhook_app.ingest.jwt_verify import JwtVerifier, VerificationError
from webhook_app.keys import parse_public_url

GENUINE = new_private_key()
ROTATED = new_private_key()
STRANGER = new_private_key()
URL = "https://hooks.example.com/webhooks/gong"
PUBLIC_URL = parse_public_url(URL)
# The genuine key second: a genuine token fails the first key before it verifies (rotation overlap).
KEYS = [ROTATED.public_key(), GENUINE.public_key()]
TIGHT = JwtVerifier(KEYS, PUBLIC_URL)
STOCK = StockJwtVerifier(KEYS, PUBLIC_URL)
BODY = orjson.dumps(call_payload("9200000000000000001"))
BODY_HASH = hashlib.sha256(BODY).hexdigest()
EXAMPLES = int(os.environ.get("JWT_EQUIVALENCE_EXAMPLES", "20000"))
SEEN: collections.Counter[str] = collections.Counter()
DISTINCT: set[bytes] = set()

_PUB = GENUINE.public_key()
HMAC_SECRETS = {
    "hs256_pem": _PUB.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    "hs256_der": _PUB.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
    "hs256_b64": public_key_b64(GENUINE).encode(),
}


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def outcome(verifier: Any, authorization: str | None, body: bytes) -> tuple[str, Any]:
    try:
        return "accepted", verifier.verify(authorization, body)
    except VerificationError as exc:
        return "refused", exc.reason
    except Exception as exc:  # an exception must be the same one on both paths
        return "raised", type(exc).__name__


def assert_agree(authorization: str | None, body: bytes = BODY) -> tuple[str, Any]:
    stock = outcome(STOCK, authorization, body)
    tight = outcome(TIGHT, authorization, body)
    assert tight == stock, (authorization if authorization is None else authorization[:2000], tight, stock)
    return tight


# --- the pieces, each checked against PyJWT's own code on its own ------------------------------------------

def _stock_segment(segment: bytes) -> bytes | None:
    try:
        return jwt.PyJWS._decode_base64url_segment(segment, "x")
    except jwt.DecodeError:
        return None


def _stock_json(data: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
segments = st.one_of(
    st.binary(max_size=40).map(b64url),
    st.binary(max_size=40).map(base64.urlsafe_b64encode),  # with canonical padding
    st.text(alphabet=B64_ALPHABET + "=", max_size=24).map(str.encode),
    st.text(alphabet=B64_ALPHABET + "=+/!. é\n", max_size=24).map(lambda s: s.encode()),
    st.binary(max_size=24),
)


@settings(max_examples=3000, deadline=None)
@given(segment=segments)
def test_segment_decoding_matches_pyjwt(segment: bytes) -> None:
    assert jwt_verify._segment(segment) == _stock_segment(segment)


json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63 - 4, max_value=2**65)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c,
                                                                                               max_size=3),
                           max_leaves=8)
JSON_TEXT_EDITS = ["none", "bom", "utf16", "trailing", "truncate", "dup_key", "surrogate", "deep", "ws", "brace"]


@st.composite
def json_documents(draw: Any) -> bytes:
    value = draw(st.dictionaries(st.text(max_size=6), json_values, max_size=5) | json_values)
    text = json.dumps(value, allow_nan=True, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    edit = draw(st.sampled_from(JSON_TEXT_EDITS))
    if edit == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    if edit == "utf16":
        return text.encode("utf-16-le")
    if edit == "trailing":
        return text.encode() + draw(st.sampled_from([b" ", b"\n", b"x", b"\x00", b",", b"}"]))
    if edit == "truncate" and text:
        return text.encode()[: draw(st.integers(0, len(text) - 1))]
    if edit == "dup_key" and text.startswith("{") and text != "{}":
        return ('{"k":' + draw(st.sampled_from(["[[1]]", "1", "1.5", "NaN", '"\\ud800"'])) + "," + text[1:]).encode()
    if edit == "surrogate":
        return ('{"s":"\\' + draw(st.sampled_from(["ud800", "udc00", "ud83d\\ude00"])) + '"}').encode()
    if edit == "deep":
        depth = draw(st.sampled_from([1, 5, 50, 300, 2000, 5000]))  # not near the parsers' ~1000 limits
        return ('{"d":' + "[" * depth + "]" * depth + "}").encode()
    if edit == "ws":
        return draw(st.sampled_from([b" \t\r\n", b"\x0c", b"\xc2\xa0"])) + text.encode()
    if edit == "brace":
        return ('{"s":"{[' + text.replace("\\", "").replace('"', "") + '"}').encode()
    return text.encode(errors="surrogatepass")


@settings(max_examples=3000, deadline=None)
@given(data=json_documents() | st.binary(max_size=40))
def test_json_reading_matches_stdlib_json(data: bytes) -> None:
    assert jwt_verify._json_object(data) == _stock_json(data)


# --- whole tokens --------------------------------------------------------------------------------------------

MISSING = object()
ALGS = ["RS256"] * 6 + ["none", "None", "NONE", "HS256", "HS512", "RS512", "PS256", "ES256", "rs256", "RS256 ", "",
                        None, 256, ["RS256"], MISSING]
HEADER_EXTRAS: dict[str, list[Any]] = {
    "typ": ["JWT", "JWT", "jwt", "at+jwt", 7, None, MISSING, MISSING],
    "kid": [MISSING] * 4 + ["k1", "../../etc/passwd", 5, None, [], {"k": 1}],
    "crit": [MISSING] * 6 + [[], ["b64"], ["exp"], "b64", [5], ["b64", "b64"]],
    "b64": [MISSING] * 6 + [True, False, 0, "false", None],
    "jku": [MISSING] * 6 + ["http://127.0.0.1:9/jwks.json"],
    "jwk": [MISSING] * 6 + [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}],
    "x": [MISSING] * 6 + [1.5, 2**70, [[1]], "{", "\U0001F600"],
}
HEADER_TEXT = ["orjson"] * 12 + ["spaced", "bom", "utf16", "nan", "surrogate", "array", "not_json", "dup_alg",
                                 "deep_ok", "deep_too_deep", "empty"]


def claim_variants(now: int) -> dict[str, list[Any]]:
    return {
        "exp": [now + 300] * 8 + [now - 3600, now - 10, now + 10**12, str(now + 300), "abc", None, MISSING,
                                  now + 300.5, float("inf"), True, [now + 300], {"t": 1}, 10**30, 10**400, -1,
                                  " 1_9999999999 "],
        "iat": [now] * 8 + [now + 3600, now + 10, now - 100, str(now), "soon", None, MISSING, now + 0.5, True,
                            [now], 10**30, float("nan")],
        "nbf": [MISSING] * 10 + [now - 10, now + 3600, "x", None, str(now - 10), 1.5],
        "sub": [MISSING] * 10 + ["call", 5, None],
        "jti": [MISSING] * 10 + ["id", 5, None, []],
        "aud": [MISSING] * 10 + ["someone", ["a", "b"], 5],
        "iss": [MISSING] * 10 + ["gong", 5],
        "webhook_url": [URL] * 8 + ["HTTPS://Hooks.Example.com:443/webhooks/gong/", "https://evil.example.com/webhooks/gong",
                                    "http://[::1", "", "no url", 5, None, MISSING, [URL]],
        "body_sha256": [BODY_HASH] * 8 + [BODY_HASH.upper(), f" {BODY_HASH}\n", "0" * 64, 5, None, MISSING, ""],
    }


PAYLOAD_TEXT = ["orjson"] * 12 + ["stdlib", "nan", "big_int", "dup_exp", "bom", "array", "not_json", "nested",
                                  "surrogate", "huge", "empty"]
SIGNERS = ["genuine"] * 6 + ["rotated"] * 2 + ["stranger", "hs256_pem", "hs256_der", "hs256_b64", "rs512", "ps256",
                                               "empty", "truncated", "flipped", "random", "none"]
SEGMENT_EDITS = ["none"] * 10 + ["pad_header_signed", "pad_payload_signed", "pad_signature", "pad_header_unsigned",
                                 "bad_padding", "noncanonical", "bad_char", "non_ascii", "extra_segment",
                                 "missing_segment", "empty_header", "empty_payload", "dots_only", "truncate"]
AUTH_FORMS = ["plain"] * 6 + ["bearer", "bearer_lower", "bearer_spaces", "padded", "none", "empty", "bearer_only"]


def _json_text(value: dict[str, Any], kind: str, key: str) -> bytes:
    if kind == "orjson":
        return orjson.dumps(value) if _orjson_ok(value) else \
            json.dumps(value).encode()
    text = json.dumps(value, allow_nan=True)
    inner = text[1:-1]
    sep = ", " if inner else ""
    return {
        "spaced": lambda: json.dumps(value, indent=1).encode(),
        "stdlib": lambda: text.encode(),
        "bom": lambda: b"\xef\xbb\xbf" + text.encode(),
        "utf16": lambda: text.encode("utf-16"),
        "nan": lambda: ("{" + inner + sep + f'"{key}": NaN' + "}").encode(),
        "big_int": lambda: ("{" + inner + sep + f'"{key}": ' + "9" * 30 + "}").encode(),
        "surrogate": lambda: ("{" + inner + sep + '"s": "\\ud800"}').encode(),
        "array": lambda: f"[{text}]".encode(),
        "not_json": lambda: text.encode()[:-1] + b",}",
        "dup_alg": lambda: ('{"alg": "none", ' + inner + "}").encode(),
        "dup_exp": lambda: ('{"exp": 1, ' + inner + "}").encode(),
        "nested": lambda: ("{" + inner + sep + '"n": {"a": [1, {"b": null}]}}').encode(),
        "deep_ok": lambda: ("{" + inner + sep + '"d": ' + "[" * 100 + "]" * 100 + "}").encode(),
        "deep_too_deep": lambda: ("{" + inner + sep + '"d": ' + "[" * 3000 + "]" * 3000 + "}").encode(),
        "huge": lambda: ("{" + inner + sep + '"pad": "' + "x" * 40_000 + '"}').encode(),
        "empty": lambda: b"",
    }[kind]()


def _orjson_ok(value: dict[str, Any]) -> bool:
    try:
        orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


def _signature(signer: str, signing_input: bytes, rnd: random.Random) -> bytes:
    if signer in ("genuine", "rotated", "stranger", "flipped", "truncated"):
        key = {"rotated": ROTATED, "stranger": STRANGER}.get(signer, GENUINE)
        sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        if signer == "flipped":
            i = rnd.randint(0, len(sig) - 1)
            sig = sig[:i] + bytes([sig[i] ^ (1 << rnd.randint(0, 7))]) + sig[i + 1:]
        if signer == "truncated":
            sig = sig[: rnd.randint(0, len(sig) - 1)]
        return sig
    if signer in HMAC_SECRETS:
        return hmac.new(HMAC_SECRETS[signer], signing_input, hashlib.sha256).digest()
    if signer == "rs512":
        return GENUINE.sign(signing_input, padding.PKCS1v15(), hashes.SHA512())
    if signer == "ps256":
        return GENUINE.sign(signing_input, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    if signer == "random":
        return rnd.randbytes(rnd.randint(1, 300))
    return b""  # "empty", "none"


def _padded(segment: bytes) -> bytes:
    return segment + b"=" * (-len(segment) % 4)


# What one generated token breaks: nothing, one part (so each check is reached on its own, behind
# checks that pass), or everything at random at once.
FOCUS = (["genuine"] * 4 + ["chaos"] * 3 + ["claims"] * 6 + ["alg", *HEADER_EXTRAS, "header_text"]
         + ["payload_text", "signer", "segment", "body"] * 2 + ["auth"])


def _pick(rnd: random.Random, focus: str, part: str, values: list[Any]) -> Any:
    """The first value (the genuine one) unless ``part`` is the one this token breaks: then one of the
    others (chaos: any value, the genuine one included)."""
    if focus == "chaos":
        return rnd.choice(values)
    if focus == part:
        return _other(rnd, values)
    return values[0]


def _other(rnd: random.Random, values: list[Any]) -> Any:
    first = values[0]
    others = [v for v in values if v is not first and not (type(v) is type(first) and v == first)]
    return rnd.choice(others)


@st.composite
def tokens(draw: Any) -> tuple[str | None, bytes, str]:
    # Choices come from a seeded Random that hypothesis draws: uniform over the variant lists (hypothesis'
    # own choices favour the first entries), and still one reproducible example per seed.
    rnd = draw(st.randoms(use_true_random=False))
    now = int(time.time())
    focus = rnd.choice(FOCUS)
    header: dict[str, Any] = {}
    alg = _pick(rnd, focus, "alg", ALGS)
    if alg is not MISSING:
        header["alg"] = alg
    for name, values in HEADER_EXTRAS.items():
        value = _pick(rnd, focus, name, values)
        if value is not MISSING:
            header[name] = value
    claims: dict[str, Any] = {}
    variants = claim_variants(now)
    broken = rnd.choice(sorted(variants)) if focus == "claims" else None
    for name, values in variants.items():
        value = rnd.choice(values) if focus == "chaos" else _other(rnd, values) if name == broken else values[0]
        if value is not MISSING:
            claims[name] = value
    claims["n"] = rnd.randrange(2**53)  # every token distinct (PyJWT ignores claims it does not know)
    header_kind = _pick(rnd, focus, "header_text", HEADER_TEXT)
    payload_kind = _pick(rnd, focus, "payload_text", PAYLOAD_TEXT)
    header_segment = b64url(_json_text(header, header_kind, "alg"))
    payload_segment = b64url(_json_text(claims, payload_kind, "exp"))
    edit = _pick(rnd, focus, "segment", SEGMENT_EDITS)
    if edit == "pad_header_signed":
        header_segment = _padded(header_segment)
    elif edit == "pad_payload_signed":
        payload_segment = _padded(payload_segment)
    elif edit == "empty_header":
        header_segment = b""
    elif edit == "empty_payload":
        payload_segment = b""
    signer = _pick(rnd, focus, "signer", SIGNERS)
    if focus == "genuine":
        signer = rnd.choice(["genuine", "rotated"])
    signature_segment = b64url(_signature(signer, header_segment + b"." + payload_segment, rnd))
    parts = [header_segment, payload_segment, signature_segment]
    if edit == "pad_signature":
        parts[2] = _padded(parts[2])
    elif edit == "pad_header_unsigned":
        parts[0] = _padded(parts[0]) if len(parts[0]) % 4 else parts[0] + b"===="
    elif edit in ("bad_padding", "noncanonical", "bad_char", "non_ascii", "truncate"):
        which = rnd.randint(0, 2)
        seg = parts[which]
        if edit == "bad_padding":
            seg += rnd.choice([b"=", b"==", b"===", b"====", b"=a"])
        elif edit == "noncanonical" and seg:
            last = B64_ALPHABET.index(chr(seg[-1]))
            seg = seg[:-1] + B64_ALPHABET[last ^ rnd.randint(1, 3)].encode()
        elif edit in ("bad_char", "non_ascii"):
            char = rnd.choice(["+", "/", "!", " ", "%", "\\"]) if edit == "bad_char" else \
                rnd.choice(["é", "\u2028", "\U0001F600", "\xa0"])
            i = rnd.randint(0, len(seg))
            seg = seg[:i] + char.encode() + seg[i:]
        elif edit == "truncate" and seg:
            seg = seg[: rnd.randint(0, len(seg) - 1)]
        parts[which] = seg
    elif edit == "extra_segment":
        parts.insert(rnd.randint(0, 3), rnd.choice([b"", b"e30", parts[2]]))
    elif edit == "missing_segment":
        del parts[rnd.randint(0, 2)]
    elif edit == "dots_only":
        parts = [b""] * rnd.randint(1, 5)
    token = b".".join(parts).decode()
    form = _pick(rnd, focus, "auth", AUTH_FORMS)
    authorization: str | None = {
        "plain": token, "bearer": f"Bearer {token}", "bearer_lower": f"bearer {token}",
        "bearer_spaces": f"  BEARER   {token}  ", "padded": f"\t{token} ", "none": None, "empty": "",
        "bearer_only": "Bearer ",
    }[form]
    body = _pick(rnd, focus, "body", [BODY, BODY, BODY + b" ", b"", BODY[:-1]])
    label = f"{focus}: {signer}/{edit}/{header_kind}/{payload_kind}"
    return authorization, body, label


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=tokens())
def test_tight_path_and_stock_jwt_decode_agree(case: tuple[str | None, bytes, str]) -> None:
    authorization, body, _label = case
    verdict, detail = assert_agree(authorization, body)
    DISTINCT.add(hashlib.sha256(repr((authorization, body)).encode()).digest())
    reason = "accepted" if verdict == "accepted" else f"{verdict}:{detail}"
    SEEN[reason] += 1
    event(reason)


# --- named cases: every reason is reachable, and both paths give it -------------------------------------------

def _token(header: dict[str, Any], claims: dict[str, Any], key: Any = GENUINE) -> str:
    h, p = b64url(orjson.dumps(header)), b64url(orjson.dumps(claims))
    return (h + b"." + p + b"." + b64url(key.sign(h + b"." + p, padding.PKCS1v15(), hashes.SHA256()))).decode()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"webhook_url": URL, "body_sha256": BODY_HASH, "iat": now, "exp": now + 300}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not MISSING}


RS = {"alg": "RS256", "typ": "JWT"}
NAMED: list[tuple[str, Any, str]] = [
    ("genuine", lambda: _token(RS, _claims()), "accepted"),
    ("rotated_key", lambda: _token(RS, _claims(), ROTATED), "accepted"),
    ("padded_segments", lambda: _padded_token(), "accepted"),
    ("no_header", lambda: None, "missing_token"),
    ("garbage", lambda: "not.a.jwt", "malformed_token"),
    ("alg_none", lambda: jwt.encode(_claims(), key=None, algorithm="none"), "bad_algorithm"),
    ("hs256_public_key", lambda: jwt.encode(_claims(), HMAC_SECRETS["hs256_b64"], algorithm="HS256"),
     "bad_algorithm"),
    ("stranger", lambda: _token(RS, _claims(), STRANGER), "bad_signature"),
    ("kid_not_a_string", lambda: _token({**RS, "kid": 5}, _claims()), "invalid_token"),
    ("sub_not_a_string", lambda: _token(RS, _claims(sub=5)), "invalid_token"),
    ("no_exp", lambda: _token(RS, _claims(exp=MISSING)), "missing_exp"),
    ("expired", lambda: _token(RS, _claims(exp=int(time.time()) - 3600)), "expired"),
    ("iat_in_future", lambda: _token(RS, _claims(iat=int(time.time()) + 3600)), "iat_in_future"),
    ("iat_a_string", lambda: _token(RS, _claims(iat=str(int(time.time())))), "iat_in_future"),
    ("exp_not_a_number", lambda: _token(RS, _claims(exp="soon")), "malformed_token"),
    ("other_url", lambda: _token(RS, _claims(webhook_url="https://evil.example.com/webhooks/gong")), "url_mismatch"),
    ("other_body", lambda: _token(RS, _claims(body_sha256="0" * 64)), "body_mismatch"),
    ("b64_false", lambda: _detached_token(), "malformed_token"),
]


def _padded_token() -> str:
    h, p = _padded(b64url(orjson.dumps(RS))), _padded(b64url(orjson.dumps(_claims())))
    return (h + b"." + p + b"." + _padded(b64url(GENUINE.sign(h + b"." + p, padding.PKCS1v15(),
                                                               hashes.SHA256())))).decode()


def _detached_token() -> str:
    h = b64url(orjson.dumps({**RS, "b64": False, "crit": ["b64"]}))
    return (h + b".." + b64url(GENUINE.sign(h + b".", padding.PKCS1v15(), hashes.SHA256()))).decode()


@pytest.mark.parametrize(("case", "make", "expected"), NAMED, ids=[c[0] for c in NAMED])
def test_named_token_gets_the_same_answer_from_both(case: str, make: Any, expected: str) -> None:
    verdict, detail = assert_agree(make())
    assert (verdict if verdict == "accepted" else detail) == expected


def test_generated_tokens_reached_every_answer() -> None:
    """Runs after the property test (file order): the generator reached acceptance and every reason."""
    if sum(SEEN.values()) < EXAMPLES // 2:
        pytest.skip("the property test did not run in this session")
    print("\njwt equivalence:", sum(SEEN.values()), "tokens,", len(DISTINCT), "distinct (Authorization, body):",
          dict(SEEN.most_common()))
    expected = {"accepted", *(f"refused:{r}" for r in ("missing_token", "malformed_token", "bad_algorithm",
                                                        "bad_signature", "invalid_token", "missing_exp", "expired",
                                                        "iat_in_future", "url_mismatch", "body_mismatch"))}
    assert expected <= set(SEEN), expected - set(SEEN)
    assert SEEN["accepted"] >= EXAMPLES // 100
