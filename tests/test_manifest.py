"""Round manifests: canonical bytes, content addressing, tamper detection."""

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flwr_stellar.payments.manifest import (
    MANIFEST_DIR,
    Contribution,
    ManifestError,
    ManifestStore,
    Rejection,
    RoundManifest,
    canonical_json,
    read_run_manifests,
    scan_manifests,
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
    assert json.loads(data)["format"] == "flwr-stellar/round-manifest/v5"


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


def _manifest(run_id: int, server_round: int) -> RoundManifest:
    return RoundManifest(run_id, server_round, "a" * 64, "b" * 64, "", "DLC:G", 10, (), ())


def test_one_reader_lists_a_run_by_round_and_names_bad_files(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path / MANIFEST_DIR)
    for run_id, server_round in ((7, 2), (7, 1), (3, 1)):
        store.put(_manifest(run_id, server_round))
    assert [(m.run_id, m.server_round) for m in read_run_manifests(tmp_path)] == [(7, 1), (7, 2)]
    assert [m.run_id for m in read_run_manifests(tmp_path, 3)] == [3]
    assert read_run_manifests(tmp_path / "nowhere") == []  # reading creates nothing
    assert not (tmp_path / "nowhere").exists()

    data = b"{not json"  # named by its hash, so what is wrong is the JSON itself
    broken = tmp_path / MANIFEST_DIR / (hashlib.sha256(data).hexdigest() + ".json")
    broken.write_bytes(data)
    assert len(read_run_manifests(tmp_path)) == 2  # lenient: shown what can be read
    with pytest.raises(ManifestError, match=f"{broken.name}: not a round manifest"):
        read_run_manifests(tmp_path, strict=True)
    files = {f.path.name: f for f in scan_manifests(tmp_path / MANIFEST_DIR)}
    assert files[broken.name].manifest is None
    assert all(not f.problem for name, f in files.items() if name != broken.name)
    misnamed = broken.rename(broken.with_name("f" * 64 + ".json"))
    (file,) = [f for f in scan_manifests(tmp_path / MANIFEST_DIR) if f.path == misnamed]
    assert file.problem.startswith("SHA-256 is ")  # the name is checked first


def test_a_misnamed_but_canonical_manifest_is_read_and_flagged(tmp_path: Path) -> None:
    m = _manifest(1, 1)
    path = tmp_path / MANIFEST_DIR / ("0" * 64 + ".json")
    path.parent.mkdir()
    path.write_bytes(m.encode())
    (file,) = scan_manifests(path.parent)
    assert file.manifest == m and file.problem == f"SHA-256 is {m.hash()}, not its name"
    with pytest.raises(ManifestError, match=str(path)):
        file.require()
