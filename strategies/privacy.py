"""The LedgerStrategy's side of differential privacy: which orders compose, and the account.

Flower's DP wrappers compose with the LedgerStrategy in one order only, **inside** it::

    LedgerStrategy.wrap(DifferentialPrivacyServerSideFixedClipping(FedAvg(), z, C, m),
                        privacy=PrivacySettings.server_side(z, C, m))

so that intake, verification and screening see every reply exactly as its node signed it, the
wrapper clips (server side) the survivors and noises their aggregate, and the manifest's
``model_after`` is the model that was released. Outside it, the wrapper would clip replies after
they were signed (every clipped reply then fails its signature) and noise a model the manifest
does not name. :func:`check_inner` refuses, when the LedgerStrategy is built, the compositions that
would make a privacy statement untrue; :class:`PrivacyAccount` keeps the run's releases and
writes each round's :class:`~flwr_stellar.privacy.PrivacyStatement`.

Client-side clipping (``DifferentialPrivacyClientSideFixedClipping`` + ``fixedclipping_mod``)
trusts the nodes to clip. The server checks it: :func:`with_clipping_check` sets screening's
``max_norm`` to the clipping norm (plus :data:`~flwr_stellar.privacy.CLIP_TOLERANCE`), so an
update that was not clipped is rejected (``norm-too-large``), unpaid, before it reaches the
aggregate whose noise assumes it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from logging import ERROR, INFO, WARNING

from flwr.app import Message
from flwr.common.logger import log
from flwr.serverapp.strategy import FedAvg, Strategy

from flwr_stellar.privacy import CLIP_TOLERANCE, PrivacySettings, PrivacyStatement, round_step
from strategies.round import RoundState
from strategies.screening import MaxNorm, Screening

__all__ = ["PrivacyAccount", "check_inner", "diagnose_mods", "with_clipping_check"]

# Flower's fixedclipping_mod / adaptiveclipping_mod refuse an instruction with more than one
# ConfigRecord; the LedgerStrategy adds its own (challenge, terms, receipts)
CONFIG_COUNT_ERROR = "expects exactly one ConfigRecord"


def _flower_dp(inner: Strategy) -> tuple[str, bool] | None:
    """(mechanism, adaptive) when ``inner`` is one of Flower's DP wrappers, else None."""
    from flwr.serverapp.strategy import (
        DifferentialPrivacyClientSideAdaptiveClipping,
        DifferentialPrivacyClientSideFixedClipping,
        DifferentialPrivacyServerSideAdaptiveClipping,
        DifferentialPrivacyServerSideFixedClipping,
    )

    kinds = (
        (DifferentialPrivacyServerSideFixedClipping, "server-clipping", False),
        (DifferentialPrivacyClientSideFixedClipping, "client-clipping", False),
        (DifferentialPrivacyServerSideAdaptiveClipping, "server-clipping", True),
        (DifferentialPrivacyClientSideAdaptiveClipping, "client-clipping", True),
    )
    for kind, mechanism, adaptive in kinds:
        if isinstance(inner, kind):
            return mechanism, adaptive
    return None


def check_inner(privacy: PrivacySettings | None, inner: Strategy) -> None:
    """Refuse, before the run starts, a privacy statement the composition would make untrue.

    Parameters
    ----------
    privacy : PrivacySettings or None
        What the LedgerStrategy is to state.
    inner : Strategy
        The strategy it wraps.

    Raises
    ------
    ValueError
        Central DP stated, but ``inner`` is not one of Flower's fixed-clipping DP wrappers (the
        wrapper must sit *inside* the LedgerStrategy), or its constructor values differ from the
        statement, or it carries Flower's own accountant (which refuses any round with fewer
        replies than ``num_sampled_clients``: screening makes such rounds); adaptive clipping;
        local DP stated over a central DP wrapper.
    """
    found = _flower_dp(inner)
    if privacy is None:
        if found is not None:
            log(
                WARNING,
                "LedgerStrategy: %s adds noise, but no privacy= was given: the manifests will "
                "state no (epsilon, delta); pass privacy=PrivacySettings.of(inner)",
                type(inner).__name__,
            )
        return
    if found is not None and found[1]:
        PrivacySettings.of(inner)  # raises: adaptive clipping is not accounted
    if not privacy.central:
        if found is not None:
            raise ValueError(
                f"LedgerStrategy: privacy states local DP, but the inner strategy "
                f"{type(inner).__name__} adds central DP: state the central one "
                "(PrivacySettings.of(inner))"
            )
        return
    if found is None:
        raise ValueError(
            f"LedgerStrategy: privacy states central DP ({privacy.mechanism}), but the inner "
            f"strategy {type(inner).__name__} is not one of Flower's "
            "DifferentialPrivacy*FixedClipping wrappers: put the DP wrapper inside, "
            "LedgerStrategy.wrap(DifferentialPrivacyServerSideFixedClipping(FedAvg(), ...), "
            "privacy=...) (outside, it clips replies after they were signed and noises a model "
            "the manifests do not name)"
        )
    actual = PrivacySettings.of(inner, delta=privacy.delta, sampling=privacy.sampling)
    for name in ("mechanism", "noise_multiplier", "clipping_norm", "num_sampled"):
        if getattr(actual, name) != getattr(privacy, name):
            raise ValueError(
                f"LedgerStrategy: privacy.{name} is {getattr(privacy, name)!r}, but the inner "
                f"{type(inner).__name__} has {getattr(actual, name)!r}"
            )
    wrapped = getattr(inner, "strategy", None)  # the wrapper's public constructor argument
    if (
        not isinstance(wrapped, FedAvg)
        or type(wrapped).aggregate_train is not FedAvg.aggregate_train
    ):
        raise ValueError(
            f"LedgerStrategy: the DP wrapper holds {type(wrapped).__name__}; the accounting is "
            "for FedAvg's weighted mean (FedAvg, FedProx: strategies that aggregate with "
            "FedAvg.aggregate_train)"
        )
    if getattr(inner, "accountant", None) is not None:
        raise ValueError(
            f"LedgerStrategy: the inner {type(inner).__name__} has Flower's own accountant, "
            "which skips the aggregation of any round with fewer replies than "
            "num_sampled_clients (screening makes such rounds): leave it out; the "
            "LedgerStrategy accounts (privacy=...)"
        )


def with_clipping_check(privacy: PrivacySettings | None, screening: Screening) -> Screening:
    """Screening that rejects updates longer than the clipping norm, for client-side clipping
    (unchanged otherwise, or when ``max_norm`` is already tighter).

    Raises
    ------
    ValueError
        Client-side clipping with screening disabled: nothing would check the nodes clipped.
    """
    if privacy is None or privacy.mechanism != "client-clipping":
        return screening
    if not screening.enabled:
        raise ValueError(
            "LedgerConfig.screening.enabled must be True with client-side clipping: the server "
            "checks that every update is within the clipping norm"
        )
    bound = privacy.clipping_norm * (1 + CLIP_TOLERANCE)
    checks = list(screening.checks)
    at = next((i for i, c in enumerate(checks) if isinstance(c, MaxNorm)), None)
    if at is None:
        checks.insert(0, MaxNorm(max_norm=bound))
    else:
        current = checks[at]
        assert isinstance(current, MaxNorm)
        if not current.active or current.max_norm > bound:
            checks[at] = MaxNorm(max_norm=bound)
    return replace(screening, checks=tuple(checks))


def diagnose_mods(replies: Iterable[Message], told: set[str]) -> None:
    """Say once, loudly, when nodes' replies are Flower's clipping Mod refusing the instruction
    for its extra ConfigRecords (the Mod must run through ``without_ledger_records``).

    Parameters
    ----------
    replies : iterable of Message
        The round's replies as received (the error replies are the ones read).
    told : set of str
        What was already said this run (updated).
    """
    if "config-count" in told:
        return
    for reply in replies:
        if reply.has_error() and CONFIG_COUNT_ERROR in str(reply.error.reason)[:500]:
            told.add("config-count")
            log(
                ERROR,
                "flwr-stellar: node %s refused the instruction in a Flower Mod that counts the "
                "instruction's ConfigRecords (fixedclipping_mod or adaptiveclipping_mod); the "
                "LedgerStrategy adds its own. On the nodes use ClientApp(mods=[signing_mod, "
                "without_ledger_records(fixedclipping_mod)])",
                reply.metadata.src_node_id,
            )
            return


class PrivacyAccount:
    """The run's privacy account: each round's sampling and release, and ε so far.

    Parameters
    ----------
    settings : PrivacySettings
        What the run promises.

    Attributes
    ----------
    steps : list of (float, float)
        Every release so far: (effective noise multiplier, sampling rate).
    last : PrivacyStatement or None
        The latest round's statement.
    """

    def __init__(self, settings: PrivacySettings) -> None:
        self.settings = settings
        self.steps: list[tuple[float, float]] = []
        self.last: PrivacyStatement | None = None
        self._sampling: dict[int, tuple[int, int]] = {}

    def configured(self, server_round: int, sampled: int, population: int) -> None:
        """A training round went out to ``sampled`` of ``population`` connected nodes."""
        self._sampling[server_round] = (sampled, max(population, sampled))

    def settle(self, state: RoundState, released: bool) -> PrivacyStatement:
        """This round's statement; its release (if any) composed into the account.

        Parameters
        ----------
        state : RoundState
            The round after screening: its candidates are what the inner strategy aggregated.
        released : bool
            Whether the round released a model.
        """
        sampled, population = self._sampling.pop(state.server_round, (0, 0))
        weights: Iterable[int] = [c.num_examples for c in state.candidates] if released else []
        step = round_step(self.settings, list(weights), sampled, population)
        if step is not None:
            self.steps.append(step)
        self.last = PrivacyStatement.for_round(self.settings, sampled, population, step, self.steps)
        return self.last

    def summary(self) -> None:
        s = self.settings
        log(
            INFO,
            "\t├── privacy: %s, noise multiplier %s, clipping norm %s, %s, epsilon at delta %g",
            s.mechanism,
            s.noise_multiplier,
            s.clipping_norm,
            f"calibrated for {s.num_sampled} nodes, sampling {s.sampling}" if s.central else "",
            s.delta,
        )
