"""ServerApp of the reference app: its strategy, wrapped by the plugin as the README shows."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from logging import INFO
from pathlib import Path
from typing import TypeGuard

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Strategy

from flwr_stellar.app.config import AppConfig
from flwr_stellar.app.models import build_model
from flwr_stellar.app.strategy_factory import build_strategy, sampled_nodes, with_privacy
from flwr_stellar.app.summary import render_summary
from flwr_stellar.app.task import (
    CentralEvaluator,
    RoundLog,
    ServerValidation,
    pseudonym_roles,
    record_verdicts,
    resolve_output_dir,
    save_model,
)
from flwr_stellar.audit.cli import run_audit_for
from flwr_stellar.privacy import PrivacySettings
from flwr_stellar.report import write_run_report
from strategies.ledger_strategy import LedgerStrategy
from strategies.scoring import COUNTING
from strategies.screening import ScreeningStrategy
from strategies.verified import VerifiedStrategy, Verify

app = ServerApp()


def wrap_strategy(
    cfg: AppConfig, inner: Strategy, out: Path, privacy: PrivacySettings | None = None
) -> Strategy:
    """The plugin's wrappers the run config asks for: ledger (all of it), or verification
    and/or screening alone; ``privacy`` is what the ledger's manifests state."""
    s = cfg.screening
    data_checks = s.enabled and (s.hurts_validation.enabled or s.lone_step.enabled)
    # the data checks evaluate every reply: a subset of the validation split of their own
    checking = ServerValidation(cfg, s.validation_examples) if data_checks else None
    if cfg.ledger.enabled:
        pricing = ServerValidation(cfg) if cfg.reward.scorer not in COUNTING else None
        used = [v for v in (pricing, checking) if v is not None]
        config = replace(cfg.plugin_config(out, checking), validation_hash=validation_hash(used))
        return LedgerStrategy.wrap(
            inner,
            config=config,
            validation=pricing,
            validation_gradient=pricing.gradient if pricing is not None else None,
            privacy=privacy,
        )
    verify = Verify(cfg.identity.strict) if cfg.identity.enabled else None
    if cfg.screening.enabled:
        screening = cfg.screening_settings(checking)
        return ScreeningStrategy(
            inner, screening, cfg.intake_settings(), verify, bound=cfg.norm_bound()
        )
    if cfg.identity.enabled:
        return VerifiedStrategy(inner, strict=cfg.identity.strict, intake=cfg.intake_settings())
    return inner


def validation_hash(validations: list[ServerValidation]) -> str:
    """SHA-256 over the examples and labels the server prices or checks updates with: the
    signed terms commit to it, so the data cannot change within the run without it showing
    (``""`` when the server uses none)."""
    if not validations:
        return ""
    digest = hashlib.sha256(b"flwr-stellar/validation/v1")
    for validation in validations:
        for tensor in (validation.data.x, validation.data.y):
            values = tensor.detach().cpu().contiguous().numpy()
            digest.update(f"{values.dtype}{values.shape}".encode())
            digest.update(values.tobytes())
    return digest.hexdigest()


def honest_journals(cfg: AppConfig, out: Path) -> list[Path]:
    """The journals of this run's simulated honest nodes (``keystores/node-<i>.journal``)."""
    attackers = cfg.attack.partitions() if cfg.attack.kinds() != ["none"] else frozenset()
    found = sorted((out / "keystores").glob("node-*.journal"))
    return [p for p in found if p.stem.removeprefix("node-") not in {str(a) for a in attackers}]


def _scalar(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float)


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = AppConfig.from_run_config(context.run_config)
    out = resolve_output_dir(cfg.output_dir, context.run_id)
    log(INFO, "flwr-stellar: run %s, outputs in %s", context.run_id, out)
    round_log = RoundLog(out / "metrics.json", context.run_id, cfg.to_run_config())
    round_log.flush(status="running")

    initial = ArrayRecord(build_model(cfg.model.name, seed=cfg.seed).state_dict())
    # Flower's DP wrapper (privacy.mode server | client) inside the plugin's: docs/privacy.md
    num_sampled = sampled_nodes(cfg.strategy, len(list(grid.get_node_ids())))
    inner = with_privacy(build_strategy(cfg.strategy), cfg.privacy, num_sampled)
    strategy = wrap_strategy(cfg, inner, out, cfg.privacy_settings(num_sampled))
    result = strategy.start(
        grid=grid,
        initial_arrays=initial,
        num_rounds=cfg.num_rounds,
        timeout=cfg.strategy.round_timeout_s,
        train_config=ConfigRecord(),
        evaluate_fn=CentralEvaluator(cfg, round_log) if cfg.evaluation.central else None,
    )
    for server_round, metrics in result.train_metrics_clientapp.items():
        round_log.rounds.setdefault(server_round, {}).update(
            {k: float(v) for k, v in metrics.items() if k != "num-examples" and _scalar(v)}
        )
    for server_round, metrics in result.evaluate_metrics_clientapp.items():
        round_log.rounds.setdefault(server_round, {}).update(
            {
                f"client_{k}": float(v)
                for k, v in metrics.items()
                if k != "num-examples" and _scalar(v)
            }
        )
    record_verdicts(round_log, strategy)
    save_model(result.arrays, out / "model.pt")
    if isinstance(strategy, LedgerStrategy) and strategy.report is not None:
        round_log.extra.update(strategy.report.as_dict())
    round_log.extra["roles"] = pseudonym_roles(cfg, out, context.run_id)
    ledger = strategy if isinstance(strategy, LedgerStrategy) else None
    spent = ledger.privacy.last if ledger is not None and ledger.privacy is not None else None
    if spent is not None:
        round_log.extra["privacy"] = spent.to_doc()
    round_log.flush(status="completed", model="model.pt")
    log(INFO, "%s", render_summary(round_log.rounds, out))
    if spent is not None:
        log(
            INFO,
            "differential privacy (%s): epsilon = %s at delta = %s after %d release(s)",
            spent.mechanism,
            spent.epsilon,
            spent.delta,
            spent.releases,
        )
    audit = None
    if (out / "ledger.db").is_file():  # the embedded ledger: audit the run as a third party would
        # simulated nodes keep their journals beside their dev keystores: the honest nodes'
        # evidence too (an attacker that meddles with its replies after signing them has a
        # journal that disagrees with what the server received, by its own doing)
        audit = run_audit_for(out, evidence=honest_journals(cfg, out) or None)
        for finding in audit:
            log(INFO, "%s", finding.render())
        round_log.extra["audit"] = [report.as_dict() for report in audit]  # for the summary
        round_log.flush(status="completed", model="model.pt")
    log(INFO, "report: %s", write_run_report(out, audit=audit, run_audit=False))
    if isinstance(strategy, LedgerStrategy) and strategy.report and strategy.report.pending_rounds:
        # training is done and saved; the run's status must still say the payouts are not
        raise RuntimeError(
            f"{len(strategy.report.pending_rounds)} round(s) pending in {out / 'outbox.db'}: "
            f"run `flwr-stellar payouts settle {out}` once the ledger is back"
        )
