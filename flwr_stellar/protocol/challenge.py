"""The challenge record: what the server attaches to every train/evaluate instruction.

It carries a fresh 256-bit nonce, so a signed reply can answer exactly one instruction of one
round of one run and never be replayed, and the server's ``strict`` flag, so a node knows from
the server itself (not from any app config) whether an unsigned reply would be thrown away.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from flwr.app import ConfigRecord

from flwr_stellar.protocol.digest import DIGEST_VERSION
from flwr_stellar.protocol.errors import RecordError, require_version
from flwr_stellar.protocol.text import parse_decimal, shown

CHALLENGE_RECORD = "flwr-stellar.challenge"  # the instruction's ConfigRecord with the nonce
NONCE_BYTES = 32
TERMS_HASH_BYTES = 32
RUN_ID_BOUND = 2**64  # Flower run ids are uint64
ROUND_BOUND = 2**63  # a round number fits a (signed) int64 on the wire


@dataclass(frozen=True)
class Challenge:
    """One round's challenge.

    Parameters
    ----------
    run_id : int
        Flower run id; a node refuses a challenge for another run.
    server_round : int
        The round the instruction belongs to.
    nonce : bytes
        32 random bytes, fresh for each round and message type.
    strict : bool
        True when the server rejects unsigned replies: a node that cannot sign then refuses
        the instruction instead of training for nothing.
    version : int
        Digest version the node must sign with.
    terms : bytes
        SHA-256 of the run's signed terms sent beside the challenge (empty: none sent). A
        node refuses an instruction whose terms record is missing or hashes otherwise.
    """

    run_id: int
    server_round: int
    nonce: bytes
    strict: bool = True
    version: int = DIGEST_VERSION
    terms: bytes = b""

    def __post_init__(self) -> None:
        if len(self.nonce) != NONCE_BYTES:
            raise RecordError(f"challenge nonce must be {NONCE_BYTES} bytes, got {len(self.nonce)}")
        if len(self.terms) not in (0, TERMS_HASH_BYTES):
            raise RecordError(f"challenge terms hash must be {TERMS_HASH_BYTES} bytes or empty")

    @classmethod
    def fresh(
        cls, run_id: int, server_round: int, strict: bool = True, terms: bytes = b""
    ) -> Challenge:
        """A new challenge with a nonce from the OS's CSPRNG."""
        return cls(run_id, server_round, secrets.token_bytes(NONCE_BYTES), strict, terms=terms)

    def to_record(self) -> ConfigRecord:
        return ConfigRecord(
            {
                "version": self.version,
                "run-id": str(self.run_id),
                "server-round": self.server_round,
                "nonce": self.nonce,
                "strict": self.strict,
                "terms": self.terms,
            }
        )

    @classmethod
    def from_record(cls, record: object) -> Challenge:
        """Read and check a challenge record; raise RecordError naming the problem.

        Every field is checked for its exact type and range before use (``True`` is not the
        version 1, ``'٤٢'`` is not the run id 42), so nothing a server sends makes the node
        raise anything but RecordError, which the signing Mod answers with an error reply.
        """
        if not isinstance(record, ConfigRecord):
            raise RecordError("challenge record is not a ConfigRecord")
        require_version(record, DIGEST_VERSION, "challenge")
        nonce, server_round = record.get("nonce"), record.get("server-round")
        run_id, strict = (
            parse_decimal(record.get("run-id"), RUN_ID_BOUND),
            record.get("strict", True),
        )
        if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
            raise RecordError(f"malformed server nonce (expected {NONCE_BYTES} bytes)")
        if type(server_round) is not int or not 0 <= server_round < ROUND_BOUND:
            raise RecordError(f"malformed server round {shown(server_round)}")
        if run_id is None:
            raise RecordError(
                f"malformed run id {shown(record.get('run-id'))} (expected ASCII decimal text)"
            )
        if not isinstance(strict, bool):
            raise RecordError("malformed strict flag")
        terms = record.get("terms", b"")
        if not isinstance(terms, bytes) or len(terms) not in (0, TERMS_HASH_BYTES):
            raise RecordError(f"malformed terms hash (expected {TERMS_HASH_BYTES} bytes or none)")
        return cls(run_id, server_round, nonce, strict, DIGEST_VERSION, terms)
