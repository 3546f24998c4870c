from __future__ import annotations

from gong_operator.hashing import content_hash, stable_hash


def test_stable_hash_ignores_key_order():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_content_hash_changes_with_any_value_and_salt_and_hides_values():
    base = content_hash({"K": "v"}, {"S": b"secret-value"}, salt="uid1")
    assert len(base) == 16
    assert content_hash({"K": "v"}, {"S": b"secret-value"}, salt="uid1") == base
    assert content_hash({"K": "v"}, {"S": b"secret-value2"}, salt="uid1") != base
    assert content_hash({"K": "w"}, {"S": b"secret-value"}, salt="uid1") != base
    assert content_hash({"K": "v"}, {"S": b"secret-value"}, salt="uid2") != base
    # key/value boundaries matter: moving bytes between key and value changes the hash
    assert content_hash({}, {"AB": b"C"}, salt="u") != content_hash({}, {"A": b"BC"}, salt="u")
    assert "secret" not in base
