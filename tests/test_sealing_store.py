"""The sealed reasoning tokens and the Responses store, without a server."""

from __future__ import annotations

from thinkbudget.serve.sealing import ReasoningSeal
from thinkbudget.serve.store import ResponseStore, Stored


def test_a_token_opens_only_with_its_key_and_model():
    seal = ReasoningSeal("k1", "m")
    token = seal.seal("step 1: 3+5=8")
    assert ReasoningSeal("k1", "m").open(token, "t") == "step 1: 3+5=8"  # same key: replicas
    assert ReasoningSeal("k2", "m").open(token, "t") is None
    assert ReasoningSeal("k1", "other-model").open(token, "t") is None
    flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    assert seal.open(flipped, "t") is None
    assert seal.open("not a token \ud800", "t") is None
    assert "3+5" not in token  # the text is not readable from the token
    assert ReasoningSeal(None, "m").open(ReasoningSeal(None, "m").seal("x"), "t") is None


def test_the_store_is_bounded_and_least_recently_used_goes_first():
    store = ResponseStore(2)
    for name in ("a", "b"):
        store.put(name, Stored({"id": name}, []))
    assert store.get("a") is not None  # a is now the most recent
    store.put("c", Stored({"id": "c"}, []))
    assert store.get("b") is None and store.get("a") and store.get("c") and len(store) == 2
    assert store.delete("a") and not store.delete("a")
    none = ResponseStore(0)
    none.put("x", Stored({}, []))
    assert none.get("x") is None and len(none) == 0
