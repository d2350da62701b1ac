"""LedgerStrategy: any Flower strategy, made accountable and paying.

It wraps an inner strategy (FedAvg, FedProx, Krum, ...) the way Flower's DP wrappers do. Per
training round it: verifies every reply (VerifiedStrategy), screens the verified ones against
the global model (strategies.screening), hands only the accepted replies to the inner
strategy untouched, onboards pseudonyms it has not paid before (sponsored account + DLC
trustline, co-signed by the node), splits the round's DLC budget among the accepted
contributions, and hands the round manifest to the anchoring worker, which journals and
submits the payments off the training critical path. Evaluation replies are verified, not paid.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from logging import INFO, WARNING

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from flwr_stellar.app.config import RewardConfig, ScreeningConfig
from flwr_stellar.ledger.base import Ledger, NotFoundError
from flwr_stellar.ledger.tx import build
from flwr_stellar.payments.amounts import SCORERS, format_amount, parse_amount, split_budget
from flwr_stellar.payments.anchoring import Anchorer
from flwr_stellar.payments.manifest import Contribution, Rejection, RoundManifest
from flwr_stellar.payments.treasury import Treasury
from flwr_stellar.protocol.digest import array_record_hash
from flwr_stellar.protocol.onboarding import ONBOARD_RECORD, ONBOARD_TYPE, Terms, attach_cosignature
from flwr_stellar.protocol.onboarding import operations as onboarding_operations
from strategies.screening import Candidate, screen
from strategies.verified import VerifiedStrategy

TERMS_RECORD = "flwr-stellar.terms"  # the instruction's ConfigRecord with the reward terms
ONBOARD_ATTEMPTS = 2
ONBOARD_TIMEOUT_S = 120.0


@dataclass
class RoundOutcome:
    """What the strategy decided in one training round (for the run's summary)."""

    manifest_hash: str
    accepted: int
    rejected: dict[str, int]
    payouts: dict[str, int] = field(default_factory=dict)  # pseudonym -> stroops


class LedgerStrategy(VerifiedStrategy):
    def __init__(
        self,
        inner: Strategy,
        *,
        ledger: Ledger,
        treasury: Treasury,
        anchorer: Anchorer,
        reward: RewardConfig,
        screening: ScreeningConfig,
        config_hash: str,
    ) -> None:
        super().__init__(inner)
        self.ledger = ledger
        self.treasury = treasury
        self.anchorer = anchorer
        self.reward = reward
        self.screening = screening
        self.config_hash = config_hash
        budget = parse_amount(reward.budget_per_round)
        if budget is None:
            raise ValueError(f"reward.budget_per_round {reward.budget_per_round!r} is invalid")
        self.budget = budget
        self.terms = Terms(
            network_passphrase=ledger.network_passphrase,
            sponsor=treasury.sponsor.public_key,
            asset_code=treasury.asset.code,
            asset_issuer=treasury.issuer.public_key,
            sponsored=reward.onboarding == "sponsored",
            authorize=reward.auth_required,
        )
        self.array_key = str(getattr(inner, "arrayrecord_key", "arrays"))
        self._global: dict[int, ArrayRecord] = {}
        self._grid: Grid | None = None
        self._onboarded: set[str] = set()
        self._previous = ""
        self.outcomes: dict[int, RoundOutcome] = {}

    # ------------------------------------------------------------------ configure
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._grid = grid
        self._global[server_round] = arrays
        messages = list(super().configure_train(server_round, arrays, config, grid))
        terms = ConfigRecord(
            {
                "asset-code": self.terms.asset_code,
                "asset-issuer": self.terms.asset_issuer,
                "budget-stroops": self.budget,
                "scorer": self.reward.scorer,
            }
        )
        for message in messages:
            message.content[TERMS_RECORD] = terms
        return messages

    # ------------------------------------------------------------------ aggregate
    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        verified = self.screen(server_round, replies, MessageType.TRAIN)
        verdicts = self.verdicts[(server_round, MessageType.TRAIN)]
        before = self._global.pop(server_round)
        candidates = [
            Candidate(m.metadata.src_node_id, verdicts.accepted[m.metadata.src_node_id], m)
            for m in verified
        ]
        screened = screen(candidates, before, self.screening, self.array_key)
        screened_out = {c.node: c.pseudonym for c, _, _ in screened.rejected}
        for c, reason, detail in screened.rejected:
            del verdicts.accepted[c.node]
            verdicts.rejected.append((c.node, str(reason), detail))
            log(
                WARNING,
                "round %d: screened out node %s: %s (%s)",
                server_round,
                c.node,
                reason,
                detail,
            )
        accepted = screened.accepted
        arrays, metrics = (
            self.inner.aggregate_train(server_round, [c.reply for c in accepted])
            if accepted
            else (None, None)
        )
        notes = self._onboard(server_round, accepted)
        rejections = [
            Rejection(reason=reason, pseudonym=screened_out.get(node, ""))
            for node, reason, _ in verdicts.rejected
        ]
        manifest = self._manifest(server_round, before, arrays, accepted, notes, rejections)
        digest = self.anchorer.submit_round(manifest)
        self._previous = digest
        outcome = RoundOutcome(
            manifest_hash=digest,
            accepted=len(accepted),
            rejected=dict(verdicts.metrics()),
            payouts={c.pseudonym: c.payout for c in manifest.contributions},
        )
        self.outcomes[server_round] = outcome
        merged = self._with_counts(metrics, server_round, MessageType.TRAIN)
        merged["dlc_paid"] = manifest.total_paid / 10_000_000
        log(
            INFO,
            "round %d: %d accepted, %d rejected, %s %s to pay, manifest %s…",
            server_round,
            len(accepted),
            len(verdicts.rejected),
            format_amount(manifest.total_paid),
            self.terms.asset_code,
            digest[:12],
        )
        return arrays, merged

    def _manifest(
        self,
        server_round: int,
        before: ArrayRecord,
        after: ArrayRecord | None,
        accepted: list[Candidate],
        notes: dict[str, str],
        rejections: list[Rejection],
    ) -> RoundManifest:
        score = SCORERS[self.reward.scorer]
        weights = dict(
            zip(
                (c.pseudonym for c in accepted),
                score([(c.pseudonym, c.num_examples) for c in accepted]),
                strict=True,
            )
        )
        payable = {p: w for p, w in weights.items() if p in self._onboarded}
        payouts = split_budget(self.budget, payable)
        return RoundManifest(
            run_id=self._run_id or 0,
            server_round=server_round,
            config_hash=self.config_hash,
            model_before=array_record_hash(before),
            model_after=array_record_hash(after) if after is not None else "",
            asset=self.treasury.asset_id,
            budget=self.budget,
            contributions=tuple(
                Contribution(
                    pseudonym=c.pseudonym,
                    update_hash=c.update_hash,
                    num_examples=c.num_examples,
                    score=weights[c.pseudonym],
                    payout=payouts.get(c.pseudonym, 0),
                    note=notes.get(c.pseudonym, ""),
                )
                for c in accepted
            ),
            rejections=tuple(rejections),
            previous=self._previous,
        )

    # ------------------------------------------------------------------ onboarding
    def _onboard(self, server_round: int, accepted: list[Candidate]) -> dict[str, str]:
        """Make sure every accepted pseudonym can be paid; return notes for those that can't."""
        pending = {c.pseudonym: c.node for c in accepted if c.pseudonym not in self._onboarded}
        for pseudonym in list(pending):
            if self._ready(pseudonym):
                self._onboarded.add(pseudonym)
                del pending[pseudonym]
        notes: dict[str, str] = {}
        for _ in range(ONBOARD_ATTEMPTS):
            if not pending:
                break
            pending, batch_notes = self._onboard_batch(server_round, pending)
            notes.update(batch_notes)
        for pseudonym in pending:
            notes.setdefault(pseudonym, "not onboarded")
        return notes

    def _ready(self, pseudonym: str) -> bool:
        try:
            account = self.ledger.load_account(pseudonym)
        except NotFoundError:
            return False
        line = next((b for b in account.balances if b.asset == self.treasury.asset_id), None)
        return line is not None and (not self.terms.authorize or bool(line.flags & 1))

    def _onboard_batch(
        self, server_round: int, pending: dict[str, int]
    ) -> tuple[dict[str, int], dict[str, str]]:
        """One round trip: build, send for co-signing, submit in sequence order."""
        assert self._grid is not None
        if not self.terms.sponsored:
            for pseudonym in pending:
                if not _exists(self.ledger, pseudonym):
                    self.ledger.fund(pseudonym)
        sequence = self.ledger.load_account(self.terms.sponsor).sequence
        envelopes = {}
        messages = []
        for i, (pseudonym, node) in enumerate(sorted(pending.items())):
            envelope = build(
                self.ledger,
                self.terms.sponsor,
                sequence + i,
                onboarding_operations(self.terms, pseudonym),
            )
            envelope.sign(self.treasury.sponsor)
            if self.terms.authorize:
                envelope.sign(self.treasury.issuer)
            envelopes[pseudonym] = envelope
            content = RecordDict({ONBOARD_RECORD: self.terms.to_record(envelope.to_xdr())})
            messages.append(Message(content, node, ONBOARD_TYPE))
        replies = {
            r.metadata.src_node_id: r
            for r in self._grid.send_and_receive(messages, timeout=ONBOARD_TIMEOUT_S)
        }
        retry: dict[str, int] = {}
        notes: dict[str, str] = {}
        for pseudonym, node in sorted(pending.items()):
            envelope = envelopes[pseudonym]
            reply = replies.get(node)
            if reply is None or not attach_cosignature(envelope, pseudonym, reply):
                why = (
                    reply.error.reason
                    if reply is not None and reply.has_error()
                    else "no valid co-signature"
                )
                notes[pseudonym] = f"not onboarded: {why}"
                log(
                    WARNING,
                    "round %d: node %s did not co-sign onboarding: %s",
                    server_round,
                    node,
                    why,
                )
                continue
            result = self.ledger.submit(envelope.to_xdr())
            if result.successful:
                self._onboarded.add(pseudonym)
            elif result.tx_code == "tx_bad_seq":
                retry[pseudonym] = node  # an earlier envelope was missing; rebuild next time
            else:
                notes[pseudonym] = f"not onboarded: {','.join((result.tx_code, *result.op_codes))}"
        if self._onboarded & set(pending):
            log(
                INFO,
                "round %d: onboarded %d pseudonym(s)",
                server_round,
                len(self._onboarded & set(pending)),
            )
        return retry, notes

    def summary(self) -> None:
        log(
            INFO,
            "\t├── LedgerStrategy: verified, screened, anchored, paid in %s",
            self.terms.asset_code,
        )
        self.inner.summary()


def _exists(ledger: Ledger, account: str) -> bool:
    try:
        ledger.load_account(account)
    except NotFoundError:
        return False
    return True
