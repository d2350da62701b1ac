"""LedgerStrategy: any Flower strategy, made accountable and paying.

A round is one value (:class:`strategies.round.RoundState`) passed through stages, and
``aggregate_train`` reads as that pipeline::

    verify -> intake -> screen -> bound (each update at the round's median norm)
    -> inner.aggregate_train -> score -> weigh (by each node's trust so far)
    -> settle (onboard, split, manifest) -> anchor and pay (flwr_stellar.payments, in a
    background worker) -> receipts (one signed per reply, carried by the node's next
    instruction; the last ones delivered after the final round)

The run's terms are signed by the distributor at the first instruction and go out with every
one (:mod:`flwr_stellar.protocol.terms`).

``start()`` opens the ledger, the treasury, the outbox and the anchoring worker before round 1
and, after the last round, waits until every round is anchored and paid, reads the balances
back from the ledger and closes everything, so a user never has to remember a ``finish()``.
Evaluation replies go through intake and verification, and are not paid.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from logging import ERROR, INFO, WARNING
from pathlib import Path
from typing import Any

from flwr import __version__ as flwr_version
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy

from flwr_stellar.client.journal import RECEIPT, Journal, signed_entry
from flwr_stellar.ledger.amounts import format_amount, stroops_to_units
from flwr_stellar.ledger.settings import LedgerSettings
from flwr_stellar.payments.amounts import split_budget
from flwr_stellar.payments.manifest import Contribution, Rejection, Release, RoundManifest
from flwr_stellar.payments.onboarding import Onboarder
from flwr_stellar.payments.session import PaymentSession, PayoutReport
from flwr_stellar.payments.settings import RewardSettings
from flwr_stellar.payments.terms_store import save_terms
from flwr_stellar.privacy import PrivacySettings
from flwr_stellar.protocol.digest import array_record_hash
from flwr_stellar.protocol.onboarding import Terms
from flwr_stellar.protocol.receipts import SignedReceipt
from flwr_stellar.protocol.terms import TERMS_RECORD, RewardTerms, SignedTerms
from strategies.bounding import Bound, NormBound
from strategies.intake import IntakeSettings
from strategies.pipeline import PipelineStrategy
from strategies.privacy import PrivacyAccount, check_inner, diagnose_mods, with_clipping_check
from strategies.receipts import ReceiptBook
from strategies.reputation import PPM, Reputation, ReputationBook, Weigh
from strategies.round import ModelReference, RoundState
from strategies.scoring import SCORERS, Scorer, make_scorer
from strategies.screening import Screen, Screening, ScreeningHistory
from strategies.verified import Verify

__all__ = ["TERMS_RECORD", "LedgerConfig", "LedgerStrategy", "RoundOutcome"]

RECEIPTS_FILE = "receipts.jsonl"  # every receipt the run's distributor signed, one a line
NOT_OPEN = (
    "LedgerStrategy is not open: use its start(), or call open() first. If another strategy "
    "wraps it (e.g. one of Flower's DifferentialPrivacy* wrappers), wrap the other way round: "
    "LedgerStrategy.wrap(DifferentialPrivacyServerSideFixedClipping(FedAvg(), ...), privacy=...) "
    "(outside, a DP wrapper clips replies after they were signed and noises a model the "
    "manifests do not name)"
)


@dataclass(frozen=True)
class LedgerConfig:
    """Everything the LedgerStrategy needs; every field has a working default.

    Parameters
    ----------
    output_dir : str
        Folder for ``manifests/``, ``outbox.db`` and, with the defaults, the embedded
        ``ledger.db`` and a development ``treasury.json``. Reusing it across runs is safe (and
        how a restarted server settles payments a crash left in flight).
    ledger : LedgerSettings
        Which ledger (embedded by default).
    reward : RewardSettings
        Coin, budget per round, onboarding, treasury keystore.
    screening : Screening
        Update checks before the inner strategy (an app's own checks go in its ``checks``).
    bound : NormBound
        How surviving updates are brought to the round's median norm before aggregation
        and scoring (default: normalized, so that an update's length earns nothing).
    reputation : Reputation
        How a node's trust across the run weighs its scores (default: on).
    intake : IntakeSettings, optional
        Record keys, the claim bound and the app's metric keys; the default reads the keys
        from the inner strategy and bounds claims at 1,000,000.
    scorer : str or Scorer
        A name in ``strategies.scoring.SCORERS``, or an app's own :class:`Scorer`: how a
        round's budget is shared. The default, ``gradient-similarity``, needs no server data
        and pays neither for length nor for claims. Value scorers (``first-order``,
        ``loss-improvement``, ``leave-one-out``, ``kernel-shapley``, ``gtg-shapley``,
        ``exact-shapley``) need ``validation`` (or ``validation_gradient``) passed to the
        strategy.
    scoring_budget : int
        Model evaluations a sampled Shapley scorer may spend per round.
    strict : bool
        Nodes that cannot sign refuse instructions instead of replying unsigned.
    run_config : Mapping[str, Any]
        Optional: the app's own settings, hashed into every manifest so an audit can tell
        runs apart. Never read otherwise.
    settle_timeout_s : float
        At the end of the run, how long to keep retrying an unavailable ledger before leaving
        the unpaid rounds in the outbox (``flwr-stellar payouts settle`` finishes them).
    validation_hash : str
        SHA-256 (hex) committing to the server's validation data, when a value scorer or a
        data check uses it: it goes into the signed terms, so the server cannot later price
        contributions on other data without it showing (``""``: the server uses none).
    receipt_timeout_s : float
        After the last round, how long to wait for nodes to acknowledge the receipts still
        undelivered (those of the last round, mostly).
    receipts : bool
        Sign and deliver a receipt for every training reply (default). Off, nodes have only
        their own journal: what they sent, not what the server did with it.
    privacy : PrivacySettings, optional
        The differential privacy the run promises (``flwr_stellar.privacy``): every manifest
        then states the mechanism, its parameters and the (epsilon, delta) spent so far. Central
        DP needs Flower's fixed-clipping DP wrapper *inside* the LedgerStrategy, with these
        values (checked when the strategy is built); client-side clipping also makes screening
        reject updates longer than the clipping norm. None (default): no statement.
    """

    output_dir: str = "flwr-stellar-output"
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    reward: RewardSettings = field(default_factory=RewardSettings)
    screening: Screening = field(default_factory=Screening)
    bound: NormBound = field(default_factory=NormBound)
    reputation: Reputation = field(default_factory=Reputation)
    intake: IntakeSettings | None = None
    scorer: str | Scorer = "gradient-similarity"
    scoring_budget: int = 32
    strict: bool = True
    run_config: Mapping[str, Any] = field(default_factory=dict)
    settle_timeout_s: float = 120.0
    validation_hash: str = ""
    receipt_timeout_s: float = 60.0
    receipts: bool = True
    privacy: PrivacySettings | None = None

    def __post_init__(self) -> None:
        typed = (
            ("ledger", LedgerSettings),
            ("reward", RewardSettings),
            ("screening", Screening),
            ("bound", NormBound),
            ("reputation", Reputation),
        )
        for name, typ in typed:
            if not isinstance(getattr(self, name), typ):
                raise TypeError(f"LedgerConfig.{name} must be a {typ.__name__}")
        if self.intake is not None and not isinstance(self.intake, IntakeSettings):
            raise TypeError("LedgerConfig.intake must be an IntakeSettings or None")
        if not self.output_dir:
            raise ValueError("LedgerConfig.output_dir must name a folder")
        if self.settle_timeout_s < 0:
            raise ValueError(
                f"LedgerConfig.settle_timeout_s must be >= 0, got {self.settle_timeout_s!r}"
            )
        if not isinstance(self.scorer, Scorer) and self.scorer not in SCORERS:
            raise ValueError(
                f"LedgerConfig.scorer must be one of {tuple(SCORERS)} or a Scorer, "
                f"got {self.scorer!r}"
            )
        hexdigits = set("0123456789abcdef")
        if self.validation_hash and (
            len(self.validation_hash) != 64 or not set(self.validation_hash) <= hexdigits
        ):
            raise ValueError("LedgerConfig.validation_hash must be a SHA-256 in lower-case hex")
        if self.receipt_timeout_s < 0:
            raise ValueError(
                f"LedgerConfig.receipt_timeout_s must be >= 0, got {self.receipt_timeout_s!r}"
            )
        if self.scoring_budget < 1:
            raise ValueError(
                f"LedgerConfig.scoring_budget must be >= 1, got {self.scoring_budget!r}"
            )
        if self.privacy is not None and not isinstance(self.privacy, PrivacySettings):
            raise TypeError("LedgerConfig.privacy must be a PrivacySettings or None")

    @property
    def scorer_name(self) -> str:
        """The scorer's name, as terms and manifests give it."""
        return self.scorer.name if isinstance(self.scorer, Scorer) else self.scorer

    def config_hash(self, inner: Strategy) -> str:
        """SHA-256 of these settings, the inner strategy's class and the app's run config.

        Parameters
        ----------
        inner : Strategy
            The wrapped strategy (its class name is part of the hash).
        """
        doc = {
            "ledger": asdict(self.ledger),
            "reward": {k: v for k, v in asdict(self.reward).items() if k != "treasury_keystore"},
            "screening": self.screening.describe(),
            "bound": asdict(self.bound),
            "reputation": asdict(self.reputation),
            "intake": asdict(self.intake) if self.intake is not None else None,
            "scorer": self.scorer_name,
            "scoring_budget": self.scoring_budget,
            "strict": self.strict,
            "inner": type(inner).__name__,
            "run_config": dict(self.run_config),
        }
        if self.privacy is not None:  # only then: the hashes of runs without DP stay as they were
            doc["privacy"] = self.privacy.describe()
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class RoundOutcome:
    """What the strategy decided in one training round (for the run's summary)."""

    manifest_hash: str
    accepted: int
    rejected: dict[str, int]
    payouts: dict[str, int] = field(default_factory=dict)  # pseudonym -> stroops paid now


def _summed(payments: Iterable[tuple[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for who, amount in payments:
        out[who] = out.get(who, 0) + amount
    return out


class LedgerStrategy(PipelineStrategy):
    """Verify, screen, score, anchor and pay around any Flower strategy.

    Parameters
    ----------
    inner : Strategy
        The app's own strategy (FedAvg, FedProx, Krum, ...). It sees only replies that passed
        intake, verification and screening, untouched, and its aggregate is the round's model.
    config : LedgerConfig, optional
        Settings; the defaults run on an embedded ledger under ``flwr-stellar-output/``.
    validation : callable, optional
        ``ArrayRecord -> float``, higher for a better model (validation accuracy, or minus
        the loss) on data the server holds: what value scorers (and the ``hurts_validation``
        check) price updates with. Called many times a round with candidate models; reuse one
        model instance inside it.
    validation_gradient : callable, optional
        ``ArrayRecord -> ArrayRecord``: the gradient of that utility (same keys and shapes),
        for the ``first-order`` scorer.

    Attributes
    ----------
    outcomes : dict[int, RoundOutcome]
        Per training round: manifest hash, accepted/rejected counts, payouts.
    verdicts : dict[tuple[int, str], RoundVerdicts]
        Per (round, message type): accepted node -> pseudonym, rejections with reasons.
    report : PayoutReport or None
        After ``start()``: anchors per round and each pseudonym's balance read from the ledger.

    Examples
    --------
    >>> strategy = LedgerStrategy.wrap(FedAvg(), config=LedgerConfig(output_dir="out"))
    >>> result = strategy.start(grid=grid, initial_arrays=arrays, num_rounds=3)
    """

    def __init__(
        self,
        inner: Strategy,
        config: LedgerConfig | None = None,
        validation: Callable[[ArrayRecord], float] | None = None,
        validation_gradient: Callable[[ArrayRecord], ArrayRecord] | None = None,
    ) -> None:
        config = config or LedgerConfig()
        check_inner(config.privacy, inner)  # before anything is built: a composition that lies
        self.config = replace(
            config, screening=with_clipping_check(config.privacy, config.screening)
        )
        super().__init__(inner, self.config.intake)
        scorer = self.config.scorer
        self.scorer: Scorer = (
            scorer
            if isinstance(scorer, Scorer)
            else make_scorer(
                scorer,
                budget=self.config.scoring_budget,
                validation=validation,
                validation_gradient=validation_gradient,
            )
        )
        self.verify = Verify(self.config.strict)
        self.screen = Screen(self.config.screening)
        self.history = ScreeningHistory.of(self.config.screening)
        self.bound = Bound(self.config.bound, self.intake.settings.array_key)
        self.weigh = Weigh(self.config.reputation)
        self.reputation = ReputationBook(self.config.reputation)
        self.config_hash = self.config.config_hash(inner)
        self.budget = self.config.reward.budget_stroops
        self.session: PaymentSession | None = None
        self.onboarder: Onboarder | None = None
        self.outcomes: dict[int, RoundOutcome] = {}
        self.report: PayoutReport | None = None
        self.num_rounds = 0
        self.held: dict[str, int] = {}  # pseudonym -> stroops held back, released at the end
        self._nodes: dict[str, int] = {}  # pseudonym -> node id
        self._grid: Grid | None = None
        self._previous = ""
        self.terms: SignedTerms | None = None  # signed at the first instruction (needs the run id)
        self.receipts = ReceiptBook()
        privacy = self.config.privacy
        self.privacy: PrivacyAccount | None = PrivacyAccount(privacy) if privacy else None
        self._told: set[str] = set()  # composition problems already diagnosed in the log

    @classmethod
    def wrap(
        cls,
        inner: Strategy,
        config: LedgerConfig | None = None,
        validation: Callable[[ArrayRecord], float] | None = None,
        validation_gradient: Callable[[ArrayRecord], ArrayRecord] | None = None,
        *,
        checks: Iterable[Any] = (),
        scorer: Scorer | None = None,
        privacy: PrivacySettings | None = None,
    ) -> LedgerStrategy:
        """Wrap the app's strategy; ``start()`` then does the rest.

        Parameters
        ----------
        inner : Strategy
            The strategy to make accountable.
        config : LedgerConfig, optional
            Settings (defaults: embedded ledger, 100 DLC a round, screening on).
        validation : callable, optional
            For value scorers: ``ArrayRecord -> float`` on the server's validation data.
        validation_gradient : callable, optional
            For ``first-order``: the gradient of that utility as an ArrayRecord.
        checks : iterable of Check, optional
            The app's own screening checks, run after the configured ones.
        scorer : Scorer, optional
            The app's own scorer (instead of ``config.scorer``).
        privacy : PrivacySettings, optional
            The run's differential privacy (instead of ``config.privacy``), e.g.
            ``PrivacySettings.of(inner)`` for a Flower DP wrapper ``inner``.
        """
        config = config or LedgerConfig()
        extra = tuple(checks)
        if extra:
            screening = config.screening
            config = replace(
                config, screening=replace(screening, checks=(*screening.checks, *extra))
            )
        if scorer is not None:
            config = replace(config, scorer=scorer)
        if privacy is not None:
            config = replace(config, privacy=privacy)
        return cls(inner, config, validation, validation_gradient)

    # ------------------------------------------------------------------ lifecycle
    def open(self, num_rounds: int) -> PaymentSession:
        """Open the ledger, treasury, outbox and worker (``start()`` does this for you).

        Parameters
        ----------
        num_rounds : int
            The distributor is topped up to this many round budgets before round 1.
        """
        if self.session is not None:
            return self.session
        self.num_rounds = num_rounds
        out = Path(self.config.output_dir).expanduser().resolve()
        session = PaymentSession(
            self.config.ledger,
            self.config.reward,
            out,
            num_rounds,
            settle_timeout=self.config.settle_timeout_s,
        )
        treasury = session.treasury
        terms = Terms(
            network_passphrase=session.ledger.network_passphrase,
            sponsor=treasury.sponsor.public_key,
            asset_code=treasury.asset.code,
            asset_issuer=treasury.issuer.public_key,
            sponsored=self.config.reward.onboarding == "sponsored",
            authorize=self.config.reward.auth_required,
        )
        self.onboarder = Onboarder(session.ledger, treasury, terms)
        self.session = session
        return session

    def close(self) -> PayoutReport | None:
        """Wait for every round to be anchored, read balances back, close; idempotent."""
        session, self.session = self.session, None
        if session is None:
            return self.report
        try:
            self.report = session.finish()
        finally:
            session.close()
        return self.report

    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int = 3,
        timeout: float = 3600,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None = None,
        **newer_flower_arguments: Any,
    ) -> Result:
        """Flower's ``Strategy.start``, with the payment machinery opened before round 1 and
        settled and closed after the last (also when a round raises).

        Parameters
        ----------
        grid, initial_arrays, num_rounds, timeout, train_config, evaluate_config, evaluate_fn
            As for :meth:`flwr.serverapp.strategy.Strategy.start`.
        **newer_flower_arguments
            Keyword arguments that a newer Flower's ``Strategy.start`` takes (1.43 adds
            ``should_stop``), passed through unchanged, so that upgrading Flower does not break a
            wrapped strategy. One that the installed Flower does not take is refused with a
            ``TypeError`` before anything is opened.

        Returns
        -------
        Result
            Flower's result; ``self.report`` holds what the ledger paid.
        """
        refuse_unknown_start_arguments(newer_flower_arguments)
        opened_here = self.session is None
        self.open(num_rounds)
        try:
            result = super().start(
                grid,
                initial_arrays,
                num_rounds,
                timeout,
                train_config,
                evaluate_config,
                evaluate_fn,
                **newer_flower_arguments,
            )
        except BaseException:
            if opened_here:
                session, self.session = self.session, None
                if session is not None:
                    session.close()  # the outbox keeps what is unsettled
            raise
        self.deliver_receipts(grid)
        if opened_here:
            report = self.close()
            if report is not None:
                log(INFO if report.settled else WARNING, "%s", report.render())
        return result

    def deliver_receipts(self, grid: Grid) -> int:
        """Send the receipts nodes have not acknowledged yet (``start()`` does, after the last
        round); return how many are still undelivered. Never raises: a node that cannot be
        reached shows as an unacknowledged reply in ``audit --evidence``."""
        try:
            return self.receipts.deliver(grid, self.config.receipt_timeout_s)
        except Exception as err:
            log(ERROR, "flwr-stellar: delivering receipts failed: %r", err)
            return sum(len(w) for w in self.receipts.pending.values())

    # ------------------------------------------------------------------ configure
    def sign_terms(self, run_id: int) -> SignedTerms:
        """The run's terms, signed by the distributor and kept in ``output_dir/terms/``."""
        assert self.session is not None
        treasury = self.session.treasury
        signed = RewardTerms(
            run_id=run_id,
            distributor=treasury.distributor.public_key,
            asset_code=treasury.asset.code,
            asset_issuer=treasury.issuer.public_key,
            budget_stroops=self.budget,
            held_stroops=self.config.reputation.held_of(self.budget),
            num_rounds=self.num_rounds,
            scorer=self.config.scorer_name,
            scoring={"scoring_budget": self.config.scoring_budget},
            settings_hash=self.config_hash,
            validation_hash=self.config.validation_hash,
            payout=self.config.reward.payout,
            quantum_stroops=self.config.reward.quantum_stroops,
            reclaim_after_s=self.config.reward.reclaim_after_s
            if self.config.reward.payout == "claimable"
            else 0,
        ).sign(treasury.distributor)
        save_terms(Path(self.config.output_dir).expanduser().resolve(), signed)
        return signed

    def prepare(
        self, messages: list[Message], server_round: int, kind: str, grid: Grid
    ) -> list[Message]:
        if self.session is None or self.onboarder is None:
            raise RuntimeError(NOT_OPEN)
        self._grid = grid
        if self.terms is None and messages:
            self.terms = self.sign_terms(grid.run.run_id)
            self.verify.terms = self.terms.digest_bytes
        messages = self.verify.attach(messages, server_round, kind, grid)
        if self.privacy is not None and kind == MessageType.TRAIN:
            self.privacy.configured(server_round, len(messages), len(list(grid.get_node_ids())))
        if self.terms is not None:
            terms = self.terms.to_record()
            for message in messages:
                message.content[TERMS_RECORD] = terms
        self.receipts.attach(messages, server_round, kind)
        return messages

    # ------------------------------------------------------------------ aggregate
    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        if self.session is None or self.onboarder is None:
            raise RuntimeError(NOT_OPEN)
        state = self.received(server_round, MessageType.TRAIN, replies, memory=self.memory)
        diagnose_mods(state.replies, self._told)
        state = self.authenticate(state)
        state = self.intake(state)
        state = self.screen(state)
        state = self.bound(state)
        arrays, metrics = self.aggregate_inner(state)
        arrays = self.bound.noised(state, arrays)
        state = self.score(state)
        self.reputation.record(state)
        state = self.weigh(state)
        manifest = self.settle(state, arrays)
        self.history.record(state)
        digest = self.anchor(manifest)
        self._previous = digest
        if self.config.receipts:
            issued = self.receipts.issue(state, manifest, digest, self.session.treasury.distributor)
            self.keep_receipts(issued)
        merged = self.record(state, metrics)
        merged["dlc_paid"] = stroops_to_units(manifest.total_paid)
        if manifest.privacy is not None:
            merged["privacy_epsilon"] = manifest.privacy.epsilon_value
        self.outcomes[server_round] = RoundOutcome(
            manifest_hash=digest,
            accepted=len(state.candidates),
            rejected={
                k: int(v)
                for k, v in merged.items()
                if k.startswith("rejected_") and isinstance(v, int | float)
            },
            payouts=_summed(manifest.payments()),
        )
        log(
            INFO,
            "round %d: %d accepted, %d rejected, %s %s to pay, manifest %s…",
            server_round,
            len(state.candidates),
            len(state.rejected),
            format_amount(manifest.total_paid),
            self.config.reward.asset_code,
            digest[:12],
        )
        return arrays, merged

    def keep_receipts(self, issued: Iterable[SignedReceipt]) -> None:
        """Append the round's receipts to ``output_dir/receipts.jsonl``: the operator's copy
        of what it signed, to answer a node whose journal lacks one it was sent."""
        rows = [
            signed_entry(RECEIPT, r.receipt.run_id, r.signed, server_round=r.receipt.server_round)
            for r in issued
        ]
        if rows:
            out = Path(self.config.output_dir).expanduser().resolve()
            Journal(out / RECEIPTS_FILE).append(*rows)

    def anchor(self, manifest: RoundManifest) -> str:
        """Store the manifest, journal its payments and hand it to the anchoring worker;
        return its hash (the MemoHash the round is anchored under)."""
        assert self.session is not None
        return self.session.submit_round(manifest)

    def memory(self, server_round: int, model: ModelReference | None) -> dict[str, Any]:
        """What a round starts with: screening history and every node's trust so far."""
        return {
            **self.history.memory(server_round, model),
            "reputation": self.reputation.snapshot(),
        }

    def score(self, state: RoundState) -> RoundState:
        """The score stage: the scorer's weights; a scorer that fails pays nobody this round
        (the manifest says so) instead of ending the run on a node's data."""
        try:
            return self.scorer(state)
        except Exception as err:
            log(ERROR, "round %d: scorer %s failed: %r", state.server_round, self.scorer.name, err)
            return replace(
                state,
                scores={c.pseudonym: 0 for c in state.candidates},
                values={},
                scoring={"name": self.scorer.name, "failed": type(err).__name__},
            )

    def settle(self, state: RoundState, arrays: ArrayRecord | None) -> RoundManifest:
        """The settle stage: onboard the scored pseudonyms, split the budget, write the manifest.

        Parameters
        ----------
        state : RoundState
            The scored round.
        arrays : ArrayRecord or None
            The round's new model (None when nothing was aggregated).
        """
        assert self.session is not None and self.onboarder is not None
        assert self._grid is not None or not state.candidates
        accepted = state.candidates
        claimable = self.config.reward.payout == "claimable"  # payable without an account
        notes = (
            self.onboarder.onboard(
                self._grid, state.server_round, {c.pseudonym: c.node for c in accepted}
            )
            if accepted and self._grid is not None and not claimable
            else {}
        )
        payable = {
            c.pseudonym: state.scores.get(c.pseudonym, 0)
            for c in accepted
            if claimable or c.pseudonym in self.onboarder.onboarded
        }
        held_budget = self.config.reputation.held_of(self.budget) if any(payable.values()) else 0
        quantum = self.config.reward.quantum_stroops
        payouts = split_budget(self.budget - held_budget, payable, quantum)
        held = split_budget(held_budget, payable, quantum)
        for c in accepted:
            self._nodes[c.pseudonym] = c.node
            self.held[c.pseudonym] = self.held.get(c.pseudonym, 0) + held.get(c.pseudonym, 0)
        releases = self.releases() if state.server_round == self.num_rounds else ()
        model_before = array_record_hash(state.model.record) if state.model is not None else ""
        return RoundManifest(
            run_id=self.verify.run_id or 0,
            server_round=state.server_round,
            config_hash=self.config_hash,
            model_before=model_before,
            model_after=array_record_hash(arrays) if arrays is not None else "",
            asset=self.session.treasury.asset_id,
            budget=self.budget,
            contributions=tuple(
                Contribution(
                    pseudonym=c.pseudonym,
                    update_hash=c.update_hash,
                    num_examples=c.num_examples,
                    score=state.scores.get(c.pseudonym, 0),
                    payout=payouts.get(c.pseudonym, 0),
                    note=notes.get(c.pseudonym, ""),
                    scale_ppm=round(PPM * c.scale),
                    reputation_ppm=self.weigh.trust_ppm(state, c.node),
                    held=held.get(c.pseudonym, 0),
                )
                for c in accepted
            ),
            releases=releases,
            rejections=tuple(
                Rejection(reason=str(r.reason), pseudonym=r.pseudonym) for r in state.rejected
            ),
            previous=self._previous,
            distributor=self.session.treasury.distributor.public_key,
            scoring=dict(state.scoring),
            terms=self.terms.digest if self.terms is not None else "",
            privacy=self.privacy.settle(state, arrays is not None and bool(accepted))
            if self.privacy is not None
            else None,
        )

    def releases(self) -> tuple[Release, ...]:
        """The last round's release of everything held: split by held x trust at the end."""
        pool = sum(self.held.values())
        trust = {p: round(PPM * self.reputation.of(n)) for p, n in self._nodes.items()}
        weights = {p: amount * trust[p] for p, amount in self.held.items() if amount > 0}
        if not pool or not any(weights.values()):
            return ()
        amounts = split_budget(pool, weights, self.config.reward.quantum_stroops)
        self.held = {}
        return tuple(Release(p, amounts[p], trust[p]) for p in sorted(weights))

    def authenticate(self, state: RoundState) -> RoundState:
        self.receipts.acknowledged(state.replies, state.server_round, state.kind)
        return self.verify(state)

    def summary(self) -> None:
        r, s = self.config.reward, self.config.screening
        log(
            INFO,
            "\t├── LedgerStrategy: %s %s a round by %s, ledger %s, outputs %s",
            r.budget_per_round,
            r.asset_code,
            self.config.scorer_name,
            self.config.ledger.backend,
            self.config.output_dir,
        )
        log(
            INFO,
            "\t├── intake %s; screening enabled=%s, min_peers=%d, checks: %s",
            self.intake.settings,
            s.enabled,
            s.min_peers,
            ", ".join(c.name for c in s.checks if c.active),
        )
        log(
            INFO,
            "\t├── norm bound %s; reputation %s",
            self.config.bound.mode,
            self.config.reputation,
        )
        if self.privacy is not None:
            self.privacy.summary()
        self.inner.summary()


def refuse_unknown_start_arguments(arguments: Mapping[str, Any]) -> None:
    """Refuse keyword arguments the installed Flower's ``Strategy.start`` does not take.

    A clear error naming the Flower version, raised before the ledger is opened, beats Flower's
    own ``TypeError`` after the treasury and the anchoring worker have started.
    """
    accepted = inspect.signature(Strategy.start).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return
    unknown = sorted(set(arguments) - set(accepted))
    if unknown:
        raise TypeError(
            f"Strategy.start() of the installed flwr {flwr_version} takes no argument "
            f"{', '.join(map(repr, unknown))} (a newer Flower's argument?)"
        )
