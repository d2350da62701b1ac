"""LedgerStrategy: any Flower strategy, made accountable and paying.

A thin composition of one-concern pieces, in the order data flows through a round:

    verify (VerifiedStrategy) -> screen (ScreeningStrategy) -> inner.aggregate_train
    -> score (strategies.scoring) -> onboard + split + manifest -> anchor and pay
    (flwr_stellar.payments, in a background worker)

``start()`` opens the ledger, the treasury, the outbox and the anchoring worker before round 1
and, after the last round, waits until every round is anchored and paid, reads the balances
back from the ledger and closes everything, so a user never has to remember a ``finish()``.
Evaluation replies are verified, not paid.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from logging import INFO, WARNING
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy

from flwr_stellar.ledger.settings import LedgerSettings
from flwr_stellar.payments.amounts import format_amount, split_budget
from flwr_stellar.payments.manifest import Contribution, Rejection, RoundManifest
from flwr_stellar.payments.onboarding import Onboarder
from flwr_stellar.payments.session import PaymentSession, PayoutReport
from flwr_stellar.payments.settings import RewardSettings
from flwr_stellar.protocol.digest import array_record_hash
from flwr_stellar.protocol.onboarding import Terms
from flwr_stellar.protocol.terms import TERMS_RECORD, RewardTerms
from flwr_stellar.reasons import RoundVerdicts
from strategies import scoring
from strategies.screening import ScreeningSettings, ScreeningStrategy
from strategies.vectors import flatten, unflatten
from strategies.verified import VerifiedStrategy

__all__ = ["TERMS_RECORD", "LedgerConfig", "LedgerStrategy", "RoundOutcome"]

STROOPS_PER_COIN = 10_000_000


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
    screening : ScreeningSettings
        Update checks before the inner strategy.
    scorer : str
        Name in ``strategies.scoring.SCORERS``: how a round's budget is shared. Value scorers
        (``loss-improvement``, ``leave-one-out``, ``kernel-shapley``, ``gtg-shapley``,
        ``exact-shapley``) need ``validation`` passed to the strategy.
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
    """

    output_dir: str = "flwr-stellar-output"
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    reward: RewardSettings = field(default_factory=RewardSettings)
    screening: ScreeningSettings = field(default_factory=ScreeningSettings)
    scorer: str = "num-examples"
    scoring_budget: int = 32
    strict: bool = True
    run_config: Mapping[str, Any] = field(default_factory=dict)
    settle_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        typed = (
            ("ledger", LedgerSettings),
            ("reward", RewardSettings),
            ("screening", ScreeningSettings),
        )
        for name, typ in typed:
            if not isinstance(getattr(self, name), typ):
                raise TypeError(f"LedgerConfig.{name} must be a {typ.__name__}")
        if not self.output_dir:
            raise ValueError("LedgerConfig.output_dir must name a folder")
        if self.settle_timeout_s < 0:
            raise ValueError(
                f"LedgerConfig.settle_timeout_s must be >= 0, got {self.settle_timeout_s!r}"
            )
        if self.scorer not in scoring.SCORERS:
            raise ValueError(
                f"LedgerConfig.scorer must be one of {tuple(scoring.SCORERS)}, got {self.scorer!r}"
            )
        if self.scoring_budget < 1:
            raise ValueError(
                f"LedgerConfig.scoring_budget must be >= 1, got {self.scoring_budget!r}"
            )

    @property
    def scoring(self) -> scoring.ScoringSettings:
        """The scorer and its budget as the scoring module takes them."""
        return scoring.ScoringSettings(self.scorer, self.scoring_budget)

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
            "screening": asdict(self.screening),
            "scorer": self.scorer,
            "scoring_budget": self.scoring_budget,
            "strict": self.strict,
            "inner": type(inner).__name__,
            "run_config": dict(self.run_config),
        }
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class RoundOutcome:
    """What the strategy decided in one training round (for the run's summary)."""

    manifest_hash: str
    accepted: int
    rejected: dict[str, int]
    payouts: dict[str, int] = field(default_factory=dict)  # pseudonym -> stroops


class LedgerStrategy(Strategy):
    """Verify, screen, score, anchor and pay around any Flower strategy.

    Parameters
    ----------
    inner : Strategy
        The app's own strategy (FedAvg, FedProx, Krum, ...). It sees only verified, screened
        replies, untouched, and its aggregate is the round's model.
    config : LedgerConfig, optional
        Settings; the defaults run on an embedded ledger under ``flwr-stellar-output/``.
    validation : callable, optional
        ``ArrayRecord -> float``, higher for a better model (validation accuracy, or minus
        the loss) on data the server holds: what value scorers price updates with. Called
        many times a round with candidate models; reuse one model instance inside it.
    validation_gradient : callable, optional
        ``ArrayRecord -> ArrayRecord``: the gradient of that utility (same keys and shapes),
        for the ``first-order`` scorer.

    Attributes
    ----------
    outcomes : dict[int, RoundOutcome]
        Per training round: manifest hash, accepted/rejected counts, payouts.
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
        self.inner = inner
        self.config = config or LedgerConfig()
        self.validation = validation
        self.validation_gradient = validation_gradient
        if self.config.scorer == "first-order" and validation_gradient is None:
            raise ValueError(
                "scorer 'first-order' needs validation_gradient=<ArrayRecord -> ArrayRecord> "
                "(the gradient of the validation utility) passed to LedgerStrategy.wrap"
            )
        needs_validation = (
            self.config.scoring.needs_model and self.config.scorer != "first-order"
        ) or self.config.screening.validation_check
        if needs_validation and validation is None:
            raise ValueError(
                f"scorer {self.config.scorer!r} / screening.validation_check price updates on "
                "the server's data: pass validation=<ArrayRecord -> float> to LedgerStrategy.wrap"
            )
        if self.config.scoring.needs_model and not self.config.screening.enabled:
            raise ValueError(
                f"scorer {self.config.scorer!r} reuses screening's decoded updates: keep "
                "screening enabled"
            )
        self.screening = ScreeningStrategy(
            inner,
            self.config.screening,
            validation if self.config.screening.validation_check else None,
        )
        self.verified = VerifiedStrategy(self.screening, strict=self.config.strict)
        self.config_hash = self.config.config_hash(inner)
        self.budget = self.config.reward.budget_stroops
        self.session: PaymentSession | None = None
        self.onboarder: Onboarder | None = None
        self.outcomes: dict[int, RoundOutcome] = {}
        self.report: PayoutReport | None = None
        self._global: dict[int, ArrayRecord] = {}
        self._grid: Grid | None = None
        self._previous = ""

    @classmethod
    def wrap(
        cls,
        inner: Strategy,
        config: LedgerConfig | None = None,
        validation: Callable[[ArrayRecord], float] | None = None,
        validation_gradient: Callable[[ArrayRecord], ArrayRecord] | None = None,
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
        """
        return cls(inner, config, validation, validation_gradient)

    @property
    def verdicts(self) -> dict[tuple[int, str], RoundVerdicts]:
        """Per (round, message type): accepted node -> pseudonym, rejections with reasons."""
        return self.verified.verdicts

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
    ) -> Result:
        """Flower's ``Strategy.start``, with the payment machinery opened before round 1 and
        settled and closed after the last (also when a round raises).

        Parameters
        ----------
        grid, initial_arrays, num_rounds, timeout, train_config, evaluate_config, evaluate_fn
            As for :meth:`flwr.serverapp.strategy.Strategy.start`.

        Returns
        -------
        Result
            Flower's result; ``self.report`` holds what the ledger paid.
        """
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
            )
        except BaseException:
            if opened_here:
                session, self.session = self.session, None
                if session is not None:
                    session.close()  # the outbox keeps what is unsettled
            raise
        if opened_here:
            report = self.close()
            if report is not None:
                log(INFO if report.settled else WARNING, "%s", report.render())
        return result

    # ------------------------------------------------------------------ configure
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        if self.session is None or self.onboarder is None:
            raise RuntimeError("LedgerStrategy is not open: use start(), or call open() first")
        self._grid = grid
        self._global[server_round] = arrays
        messages = list(self.verified.configure_train(server_round, arrays, config, grid))
        treasury = self.session.treasury
        terms = RewardTerms(
            treasury.asset.code, treasury.issuer.public_key, self.budget, self.config.scorer
        ).to_record()
        for message in messages:
            message.content[TERMS_RECORD] = terms
        return messages

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.verified.configure_evaluate(server_round, arrays, config, grid)

    # ------------------------------------------------------------------ aggregate
    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        if self.session is None or self.onboarder is None or self._grid is None:
            raise RuntimeError("LedgerStrategy is not open: use start(), or call open() first")
        before = self._global.pop(server_round)
        arrays, metrics = self.verified.aggregate_train(server_round, replies)
        verdicts = self.verified.verdicts[(server_round, MessageType.TRAIN)]
        screened = self.screening.screened.pop(server_round, None)
        accepted = [
            (verdicts.accepted[c.node], c)
            for c in (screened.accepted if screened else [])
            if c.node in verdicts.accepted
        ]
        notes = self.onboarder.onboard(self._grid, server_round, {p: c.node for p, c in accepted})
        settings = self.config.scoring
        updates = None
        if settings.needs_model and accepted and screened is not None:
            assert screened.base is not None and screened.deltas is not None
            updates = scoring.RoundUpdates(
                base=screened.base,
                deltas=screened.deltas,
                rows=[c.row for _, c in accepted],
                utility=self._utility(before),
                utility_gradient=self._gradient(before),
            )
        scores = scoring.score(
            settings,
            [scoring.Contribution(p, c.num_examples) for p, c in accepted],
            updates,
            server_round,
        )
        weights = scores.weights
        if any(weights.values()):  # a round worth nothing as a whole singles nobody out
            for p, c in accepted:
                if weights.get(p, 0) == 0:  # worth nothing, unlike others: watched a while
                    self.screening.watch(c.node, server_round)
        payable = {p: w for p, w in weights.items() if p in self.onboarder.onboarded}
        payouts = split_budget(self.budget, payable)
        manifest = RoundManifest(
            run_id=self.verified.run_id or 0,
            server_round=server_round,
            config_hash=self.config_hash,
            model_before=array_record_hash(before),
            model_after=array_record_hash(arrays) if arrays is not None else "",
            asset=self.session.treasury.asset_id,
            budget=self.budget,
            contributions=tuple(
                Contribution(
                    pseudonym=p,
                    update_hash=c.update_hash,
                    num_examples=c.num_examples,
                    score=weights[p],
                    payout=payouts.get(p, 0),
                    note=notes.get(p, ""),
                )
                for p, c in accepted
            ),
            rejections=tuple(
                Rejection(reason=str(r.reason), pseudonym=r.pseudonym) for r in verdicts.rejected
            ),
            previous=self._previous,
            distributor=self.session.treasury.distributor.public_key,
            scoring=scores.manifest_params(settings),
        )
        digest = self.session.submit_round(manifest)
        self._previous = digest
        merged = MetricRecord(dict(metrics.items()) if metrics is not None else {})
        merged["dlc_paid"] = manifest.total_paid / STROOPS_PER_COIN
        self.outcomes[server_round] = RoundOutcome(
            manifest_hash=digest,
            accepted=len(accepted),
            rejected={
                k: int(v)
                for k, v in merged.items()
                if k.startswith("rejected_") and isinstance(v, int | float)
            },
            payouts={c.pseudonym: c.payout for c in manifest.contributions},
        )
        log(
            INFO,
            "round %d: %d accepted, %d rejected, %s %s to pay, manifest %s…",
            server_round,
            len(accepted),
            len(verdicts.rejected),
            format_amount(manifest.total_paid),
            self.config.reward.asset_code,
            digest[:12],
        )
        return arrays, merged

    def _gradient(self, template: ArrayRecord) -> Callable[[np.ndarray], np.ndarray] | None:
        gradient = self.validation_gradient
        if gradient is None:
            return None

        def flat_gradient(flat: np.ndarray) -> np.ndarray:
            return flatten(gradient(unflatten(template, flat)), keys=template.keys())

        return flat_gradient

    def _utility(self, template: ArrayRecord) -> Callable[[np.ndarray], float]:
        validation = self.validation
        if validation is None:
            return lambda flat: 0.0  # first-order needs only the gradient

        def utility(flat: np.ndarray) -> float:
            return float(validation(unflatten(template, flat)))

        return utility

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.verified.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        r = self.config.reward
        log(
            INFO,
            "\t├── LedgerStrategy: %s %s a round by %s, ledger %s, outputs %s",
            r.budget_per_round,
            r.asset_code,
            self.config.scorer,
            self.config.ledger.backend,
            self.config.output_dir,
        )
        self.verified.summary()
