"""Round manifests: canonical bytes, content addressing, tamper detection."""

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flwr_stellar.payments.manifest import (
    Contribution,
    ManifestError,
    ManifestStore,
    Rejection,
    RoundManifest,
    canonical_json,
)

hexes = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
names = st.text(min_size=1, max_size=20)
contributions = st.lists(
    st.builds(
        Contribution,
        names,
        hexes,
        st.integers(0, 10**6),
        st.integers(0, 10**6),
        st.integers(0, 2**62),
        st.text(max_size=10),
    ),
    max_size=8,
    unique_by=lambda c: c.pseudonym,
)
rejections = st.lists(st.builds(Rejection, names, st.text(max_size=10)), max_size=5)
manifests = st.builds(
    RoundManifest,
    st.integers(0, 2**64 - 1),
    st.integers(1, 10**4),
    hexes,
    hexes,
    hexes,
    names,
    st.integers(0, 2**62),
    contributions.map(tuple),
    rejections.map(tuple),
    hexes,
)


@given(manifests, st.randoms())
def test_encoding_is_canonical_and_round_trips(m: RoundManifest, rnd) -> None:
    data = m.encode()
    assert RoundManifest.decode(data).encode() == data
    contribs, rejects = list(m.contributions), list(m.rejections)
    rnd.shuffle(contribs)
    rnd.shuffle(rejects)
    shuffled = RoundManifest(
        **{**m.__dict__, "contributions": tuple(contribs), "rejections": tuple(rejects)}
    )
    assert shuffled.encode() == data and shuffled.hash() == m.hash()
    assert m.hash() == hashlib.sha256(data).hexdigest()
    assert json.loads(data)["format"] == "flwr-stellar/round-manifest/v3"


def test_scorer_is_part_of_the_hash_and_v2_manifests_still_read() -> None:
    base = RoundManifest(1, 1, "c" * 64, "a" * 64, "b" * 64, "DLC:G", 10, (), ())
    priced = RoundManifest(**{**base.__dict__, "scoring": {"name": "kernel-shapley", "budget": 32}})
    assert priced.hash() != base.hash()
    assert RoundManifest.decode(priced.encode()).scoring == {"name": "kernel-shapley", "budget": 32}
    old = RoundManifest(**{**base.__dict__, "format": "flwr-stellar/round-manifest/v2"})
    data = old.encode()
    assert b"scoring" not in data  # a v2 manifest keeps its bytes, hence its anchored hash
    assert RoundManifest.decode(data).encode() == data
    with pytest.raises(ManifestError, match="unknown manifest format"):
        RoundManifest.decode(data.replace(b"/v2", b"/v9"))


@given(manifests)
def test_any_field_change_changes_the_hash(m: RoundManifest) -> None:
    assert RoundManifest(**{**m.__dict__, "budget": m.budget + 1}).hash() != m.hash()
    assert RoundManifest(**{**m.__dict__, "server_round": m.server_round + 1}).hash() != m.hash()


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError):
        canonical_json({"score": 0.5})


def test_non_canonical_bytes_are_refused() -> None:
    m = RoundManifest(1, 1, "a" * 64, "b" * 64, "", "DLC:G", 10, (), ())
    pretty = json.dumps(json.loads(m.encode()), indent=1).encode()
    with pytest.raises(ManifestError, match="canonical"):
        RoundManifest.decode(pretty)
    with pytest.raises(ManifestError):
        RoundManifest.decode(b"{not json")


def test_store_is_content_addressed_and_detects_tampering(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    m = RoundManifest(
        1,
        2,
        "a" * 64,
        "b" * 64,
        "c" * 64,
        "DLC:G",
        10,
        (Contribution("GA", "d" * 64, 5, 5, 10),),
        (Rejection("non-finite", "GB"),),
    )
    digest = store.put(m)
    assert digest == m.hash() and (tmp_path / f"{digest}.json").read_bytes() == m.encode()
    assert store.put(m) == digest  # idempotent
    assert store.get(digest) == m
    path = tmp_path / f"{digest}.json"
    path.write_bytes(path.read_bytes().replace(b'"payout":10', b'"payout":11'))
    with pytest.raises(ManifestError, match="does not hash"):
        store.get(digest)
    with pytest.raises(ManifestError, match="not a manifest hash"):
        store.get("../etc/passwd")
    with pytest.raises(ManifestError, match="not found"):
        store.get("0" * 64)


def test_a_v1_manifest_is_refused_by_name() -> None:
    from flwr_stellar.payments.manifest import ManifestError

    doc = json.loads(RoundManifest(1, 1, "a" * 64, "b" * 64, "", "DLC:G", 10, (), ()).encode())
    doc["format"] = "flwr-stellar/round-manifest/v1"
    with pytest.raises(ManifestError, match="unknown manifest format"):
        RoundManifest.decode(json.dumps(doc).encode())
