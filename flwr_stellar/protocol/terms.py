"""The reward-terms record: what a node is told it is paid, and in which coin, each round.

The server attaches it to every training instruction; the client wrapper reads nothing else
about rewards, so a node learns the asset, its issuer, the round's budget and the scorer from the
server that will pay it, never from the app's run config.
"""

from __future__ import annotations

from dataclasses import dataclass

from flwr.app import ConfigRecord

from flwr_stellar.protocol.errors import RecordError

TERMS_RECORD = "flwr-stellar.terms"  # the instruction's ConfigRecord with the reward terms
VERSION = 1


@dataclass(frozen=True)
class RewardTerms:
    """The terms of one round.

    Parameters
    ----------
    asset_code : str
        The coin's code, e.g. ``DLC``.
    asset_issuer : str
        The issuer's account id (``G...``); a node may pin it.
    budget_stroops : int
        What the round pays in all, in stroops (1e-7 of a coin).
    scorer : str
        How the budget is shared among accepted contributions.
    """

    asset_code: str
    asset_issuer: str
    budget_stroops: int
    scorer: str

    def to_record(self) -> ConfigRecord:
        return ConfigRecord(
            {
                "version": VERSION,
                "asset-code": self.asset_code,
                "asset-issuer": self.asset_issuer,
                "budget-stroops": self.budget_stroops,
                "scorer": self.scorer,
            }
        )

    @classmethod
    def from_record(cls, record: object) -> RewardTerms:
        """Read a terms record; raise RecordError naming the first bad field."""
        if not isinstance(record, ConfigRecord):
            raise RecordError("reward terms record is not a ConfigRecord")
        if record.get("version") != VERSION:
            raise RecordError(f"unknown reward terms version {record.get('version')!r}")
        code, issuer, budget, scorer = (
            _field(record, "asset-code", str),
            _field(record, "asset-issuer", str),
            _field(record, "budget-stroops", int),
            _field(record, "scorer", str),
        )
        assert isinstance(budget, int)
        return cls(str(code), str(issuer), budget, str(scorer))


def _field(record: ConfigRecord, key: str, typ: type) -> object:
    value = record.get(key)
    if not isinstance(value, typ) or isinstance(value, bool):
        raise RecordError(f"reward terms field {key!r} is missing or not a {typ.__name__}")
    return value
