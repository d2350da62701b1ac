"""Round manifests: what a round decided, encoded canonically and stored by content hash.

The SHA-256 of the canonical bytes is the round's MemoHash on the ledger, so anyone holding
the manifest file can check it against the chain, and each manifest names the previous
round's hash, so the run's manifests form a chain of their own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from flwr_stellar.files import write_atomic
from flwr_stellar.privacy import PrivacyStatement
from flwr_stellar.protocol.canonical import canonical_json

FORMAT = "flwr-stellar/round-manifest/v5"  # v5: names the run's signed terms
FORMAT_V4 = "flwr-stellar/round-manifest/v4"  # v4: each contribution's norm scale and trust
FORMAT_V3 = "flwr-stellar/round-manifest/v3"  # v3: names the scorer and its parameters
FORMAT_V2 = "flwr-stellar/round-manifest/v2"  # v2: names the paying distributor (still read)
HEX64 = frozenset("0123456789abcdef")


class ManifestError(ValueError):
    """A manifest file is missing, corrupt or does not match its name."""


@dataclass(frozen=True)
class Contribution:
    pseudonym: str
    update_hash: str
    num_examples: int
    score: int  # the scorer's integer weight
    payout: int  # stroops of the reward asset
    note: str = ""  # why a payout is 0, if it is
    # v4: the norm bound's scale its update was applied at, and the trust its score was
    # weighed with (score = the scorer's integer weight x reputation_ppm), in millionths
    scale_ppm: int = 1_000_000
    reputation_ppm: int = 1_000_000
    # v4: stroops of its share held back until the run's last round (released by trust)
    held: int = 0


@dataclass(frozen=True)
class Release:
    """v4, the run's last round: held-back rewards paid out, split by held x final trust."""

    pseudonym: str
    amount: int  # stroops
    reputation_ppm: int  # the pseudonym's trust at the end of the run


@dataclass(frozen=True)
class Rejection:
    reason: str
    pseudonym: str = ""  # empty when the reply's signature did not verify


@dataclass(frozen=True)
class RoundManifest:
    run_id: int
    server_round: int
    config_hash: str
    model_before: str
    model_after: str  # "" when the round produced no new model
    asset: str  # CODE:ISSUER
    budget: int  # stroops
    contributions: tuple[Contribution, ...]
    rejections: tuple[Rejection, ...]
    previous: str = ""  # hash of the previous round's manifest ("" for the first)
    distributor: str = ""  # the account that pays and anchors: an auditor checks the source
    # the scorer that priced the round: name, and for value scorers budget, seed, evaluations
    scoring: Mapping[str, str | int] = field(default_factory=dict)
    releases: tuple[Release, ...] = ()  # v4: the held-back rewards, in the run's last round
    terms: str = ""  # v5: SHA-256 of the run's signed terms (RUN_DIR/terms/<hash>.json)
    # optional, only in runs with differential privacy (other manifests keep their exact bytes):
    # the mechanism, its parameters and the epsilon spent so far (flwr_stellar.privacy)
    privacy: PrivacyStatement | None = None
    format: str = field(default=FORMAT)

    def encode(self) -> bytes:
        """Canonical bytes: sorted keys, no whitespace, ints and strings only, rows sorted."""
        doc = asdict(self)
        doc["scoring"] = dict(self.scoring)
        if self.privacy is None:  # a run without DP: the bytes of a manifest before the field
            doc.pop("privacy")
        if self.format != FORMAT:  # an old manifest keeps its exact bytes
            doc.pop("terms")
        if self.format in (FORMAT_V2, FORMAT_V3):  # an old manifest keeps its exact bytes
            doc.pop("releases")
            for c in doc["contributions"]:
                c.pop("scale_ppm")
                c.pop("reputation_ppm")
                c.pop("held")
        if self.format == FORMAT_V2:
            doc.pop("scoring")
        doc["contributions"] = sorted(doc["contributions"], key=lambda c: c["pseudonym"])
        doc["rejections"] = sorted(doc["rejections"], key=lambda r: (r["reason"], r["pseudonym"]))
        if "releases" in doc:
            doc["releases"] = sorted(doc["releases"], key=lambda r: r["pseudonym"])
        return canonical_json(doc)

    def hash(self) -> str:
        return hashlib.sha256(self.encode()).hexdigest()

    @property
    def total_paid(self) -> int:
        """Everything this manifest pays: the round's payouts and any releases."""
        return sum(amount for _, amount in self.payments())

    @property
    def round_paid(self) -> int:
        """What the round's own budget pays now (releases not included)."""
        return sum(c.payout for c in self.contributions)

    @property
    def total_held(self) -> int:
        return sum(c.held for c in self.contributions)

    def payments(self) -> list[tuple[str, int]]:
        """Every payment this manifest orders: (pseudonym, stroops), payouts then releases."""
        out = [(c.pseudonym, c.payout) for c in self.contributions if c.payout > 0]
        return out + [(r.pseudonym, r.amount) for r in self.releases if r.amount > 0]

    @classmethod
    def decode(cls, data: bytes) -> RoundManifest:
        try:
            doc = json.loads(data)
            if doc.get("format") not in (FORMAT, FORMAT_V4, FORMAT_V3, FORMAT_V2):
                raise ManifestError(f"unknown manifest format {doc.get('format')!r}")
            if not isinstance(doc.get("scoring", {}), dict):
                raise ManifestError("scoring must be an object")
            doc["contributions"] = tuple(Contribution(**c) for c in doc["contributions"])
            doc["rejections"] = tuple(Rejection(**r) for r in doc["rejections"])
            doc["releases"] = tuple(Release(**r) for r in doc.get("releases", ()))
            if "privacy" in doc:
                doc["privacy"] = PrivacyStatement.from_doc(doc["privacy"])
            manifest = cls(**doc)
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise ManifestError(f"not a round manifest: {err}") from None
        if manifest.encode() != data:
            raise ManifestError("manifest bytes are not in canonical form")
        return manifest


class ManifestStore:
    """Content-addressed files ``<dir>/<sha256>.json``, written atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def put(self, manifest: RoundManifest) -> str:
        data = manifest.encode()
        digest = hashlib.sha256(data).hexdigest()
        path = self.directory / f"{digest}.json"
        if not path.exists():
            write_atomic(path, data)
        return digest

    def digests(self) -> list[str]:
        """The hashes of every stored manifest (file names; contents checked by ``get``)."""
        return sorted(
            p.stem
            for p in self.directory.glob("*.json")
            if len(p.stem) == 64 and set(p.stem) <= HEX64
        )

    def stored_at(self, digest: str) -> float:
        """When the manifest was stored (its file's modification time, Unix seconds): its
        round cannot have been anchored before."""
        return (self.directory / f"{digest}.json").stat().st_mtime

    def get(self, digest: str) -> RoundManifest:
        if len(digest) != 64 or not set(digest) <= HEX64:
            raise ManifestError(f"not a manifest hash: {digest!r}")
        path = self.directory / f"{digest}.json"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ManifestError(f"manifest {digest} not found in {self.directory}") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise ManifestError(f"{path} does not hash to its name (corrupt or edited)")
        return RoundManifest.decode(data)


MANIFEST_DIR = "manifests"  # a run's store: RUN_DIR/manifests/<sha256>.json


@dataclass(frozen=True)
class ManifestFile:
    """One file of a manifest store as found on disk, read and checked once.

    The audit, the report and the explorer all read the same folder but want different things
    from a bad file (the audit fails the run naming it, the report and the explorer show what
    can be read), so the reader says what it found and leaves the verdict to them.

    Parameters
    ----------
    path : Path
        The file.
    manifest : RoundManifest or None
        The decoded manifest when the bytes are a canonical manifest (even if misnamed).
    problem : str
        Why the file cannot be trusted, without its name: its SHA-256 is not its name, or it
        is not a canonical manifest (e.g. malformed JSON); ``""`` when sound.
    """

    path: Path
    manifest: RoundManifest | None
    problem: str = ""

    def require(self) -> RoundManifest:
        """The manifest, or ManifestError naming the file and what is wrong with it."""
        if self.problem or self.manifest is None:
            raise ManifestError(f"{self.path}: {self.problem or 'unreadable'}")
        return self.manifest


def scan_manifests(directory: Path) -> list[ManifestFile]:
    """Every ``*.json`` in a manifest store, by file name, each decoded and checked.

    Reads only: unlike :class:`ManifestStore` it never creates the folder (a missing one holds
    no files), and it never raises for a bad file (see :attr:`ManifestFile.problem`).

    Parameters
    ----------
    directory : Path
        The store, usually ``RUN_DIR / MANIFEST_DIR``.
    """
    found = []
    for path in sorted(directory.glob("*.json")):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        try:
            manifest: RoundManifest | None = RoundManifest.decode(data)
            problem = ""
        except ManifestError as err:
            manifest, problem = None, str(err)
        if digest != path.stem:  # checked first: a misnamed file is untrusted, readable or not
            problem = f"SHA-256 is {digest}, not its name"
        found.append(ManifestFile(path, manifest, problem))
    return found


def read_run_manifests(
    run_dir: Path, run_id: int | None = None, *, strict: bool = False
) -> list[RoundManifest]:
    """The manifests of one run in ``run_dir/manifests``, by round.

    Parameters
    ----------
    run_dir : Path
        The run's folder (a missing or empty store gives ``[]``).
    run_id : int, optional
        Which run, when the folder holds several (default, or when no manifest names it: the
        run of the latest round).
    strict : bool
        Raise on the first bad file instead of skipping it (default: False, skip: the audit is
        what reports bad files; a view shows what can be read).

    Raises
    ------
    ManifestError
        ``strict`` and a file is misnamed or not a canonical manifest; the message names it.
    """
    found: list[RoundManifest] = []
    for file in scan_manifests(run_dir / MANIFEST_DIR):
        if strict:
            file.require()
        if file.manifest is not None:
            found.append(file.manifest)
    if not found:
        return []
    if run_id is None or all(m.run_id != run_id for m in found):
        run_id = max(found, key=lambda m: (m.server_round, m.run_id)).run_id
    return sorted((m for m in found if m.run_id == run_id), key=lambda m: m.server_round)
