"""Build the inner Flower strategy named by ``strategy.name`` in the run config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAdam,
    FedAvg,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    Krum,
    MultiKrum,
    Strategy,
)

from flwr_stellar.app.config import PrivacySection, StrategySection


def _common(cfg: StrategySection) -> dict[str, Any]:
    return {
        "fraction_train": cfg.fraction_train,
        "fraction_evaluate": cfg.fraction_evaluate,
        "min_train_nodes": cfg.min_nodes,
        "min_evaluate_nodes": cfg.min_nodes if cfg.fraction_evaluate > 0 else 0,
        "min_available_nodes": cfg.min_nodes,
    }


STRATEGIES: dict[str, Callable[[StrategySection], Strategy]] = {
    "fedavg": lambda c: FedAvg(**_common(c)),
    "fedprox": lambda c: FedProx(**_common(c), proximal_mu=c.proximal_mu),
    "fedadam": lambda c: FedAdam(**_common(c), eta=c.server_lr),
    "fedmedian": lambda c: FedMedian(**_common(c)),
    "fedtrimmedavg": lambda c: FedTrimmedAvg(**_common(c), beta=c.trim_beta),
    "krum": lambda c: Krum(**_common(c), num_malicious_nodes=c.num_malicious),
    "multikrum": lambda c: MultiKrum(
        **_common(c), num_malicious_nodes=c.num_malicious, num_nodes_to_select=c.num_to_select
    ),
}


def build_strategy(cfg: StrategySection) -> Strategy:
    try:
        factory = STRATEGIES[cfg.name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {cfg.name!r}; choose one of {tuple(STRATEGIES)}"
        ) from None
    return factory(cfg)


def with_privacy(inner: Strategy, cfg: PrivacySection, num_sampled: int) -> Strategy:
    """``inner`` inside Flower's DP wrapper that ``privacy.mode`` names (server | client), with
    its noise calibrated to ``num_sampled`` nodes a round; unchanged otherwise (none, and local,
    where the nodes add the noise). The LedgerStrategy then wraps the result: the order in which
    signatures, screening and the manifests see what the nodes sent (docs/privacy.md)."""
    if not cfg.central:
        return inner
    wrapper = (
        DifferentialPrivacyServerSideFixedClipping
        if cfg.mode == "server"
        else DifferentialPrivacyClientSideFixedClipping
    )
    return wrapper(inner, cfg.noise_multiplier, cfg.clipping_norm, num_sampled)


def sampled_nodes(cfg: StrategySection, connected: int) -> int:
    """How many nodes FedAvg samples a round out of ``connected`` (its own rule)."""
    return max(int(connected * cfg.fraction_train), cfg.min_nodes)
