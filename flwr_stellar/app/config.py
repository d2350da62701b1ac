"""Run-config schema: the types and rules of the flat keys Flower hands to the App.

Defaults live in exactly one place, ``[tool.flwr.app.config]`` of pyproject.toml, because
that is where ``flwr run`` reads them. This module gives those keys types and rules, so both
front doors (``flwr run --run-config`` and the Hydra entry point) reject a bad value the same
way, naming the key.

Each ``*Section`` dataclass is one ``[tool.flwr.app.config.<section>]`` table (``ledger.*`` is
:class:`LedgerSection`). They are called sections, not configs, so that none of them reads as
the plugin's own settings: ``LedgerConfig`` is the LedgerStrategy's
(``strategies.ledger_strategy``), built from these sections by :meth:`AppConfig.plugin_config`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass, make_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints

from flwr.app import ArrayRecord

from flwr_stellar.app.attacks import ATTACKS
from flwr_stellar.ledger.settings import LedgerSettings
from flwr_stellar.payments.settings import RewardSettings
from flwr_stellar.privacy import SAMPLING, PrivacySettings
from strategies.bounding import NormBound
from strategies.intake import IntakeSettings
from strategies.ledger_strategy import LedgerConfig as PluginConfig
from strategies.reputation import Reputation
from strategies.screening import CHECKS, Screening, default_checks

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Scalar = bool | int | float | str

PROJECT_DIR = Path(__file__).resolve().parents[2]
DATASETS = ("fashion_mnist",)
PARTITIONERS = ("dirichlet", "iid")
# Names the reference app's registries answer to (strategy_factory and models check that they
# agree); kept here so this schema imports neither (no import cycle).
STRATEGY_NAMES = ("fedavg", "fedprox", "fedadam", "fedmedian", "fedtrimmedavg", "krum", "multikrum")
MODEL_NAMES = ("cnn", "cnn_small")
ATTACK_KINDS = ("none", *ATTACKS)  # one class an attack, registered in app/attacks.py
# The plugin's settings validate ledger.*, reward.* and screening.*; their messages name the
# dataclass field, which maps back onto this schema's run-config key.
PLUGIN_FIELDS = (
    ("LedgerConfig.scorer", "reward.scorer"),
    ("LedgerConfig.scoring_budget", "reward.scoring_budget"),
    ("LedgerSettings.", "ledger."),
    ("RewardSettings.", "reward."),
    ("Screening.", "screening."),
    ("NormBound.mode", "screening.bound"),
    ("NormBound.noise", "screening.noise"),
    ("Reputation.", "reputation."),
    ("IntakeSettings.max_num_examples", "screening.max_num_examples"),
    *((f"{cls.__name__}.", f"screening.{cls.name}.") for cls in CHECKS),
    ("PrivacySettings.local.epsilon", "privacy.local_epsilon"),
    ("PrivacySettings.local.delta_release", "privacy.local_delta"),
    ("PrivacySettings.local.", "privacy."),
    ("PrivacySettings.", "privacy."),
)
PRIVACY_MODES = ("none", "server", "client", "local")
# central DP is accounted for FedAvg's weighted mean (FedProx aggregates the same way)
PRIVATE_STRATEGIES = ("fedavg", "fedprox")
# What the reference app's ClientApp sends (client_app.py): intake holds replies to exactly these.
TRAIN_METRICS = ("train_loss", "train_accuracy", "num-examples")
EVALUATE_METRICS = ("loss", "accuracy", "num-examples")


class ConfigError(ValueError):
    """A run-config key is unknown, missing, of the wrong type or out of range."""


@dataclass(unsafe_hash=True)  # hashable for caches; not frozen, so Hydra can merge
class DatasetSection:
    name: str
    root: str
    cache_dir: str
    partitioner: str
    alpha: float
    min_partition_size: int
    val_fraction: float
    server_val_size: int
    max_train_examples: int
    degraded_nodes: str
    label_noise: float

    def degraded(self) -> frozenset[int]:
        """Partitions whose training labels are partly wrong (honest nodes, poorer data)."""
        return frozenset(int(p) for p in self.degraded_nodes.replace(" ", "").split(",") if p)


@dataclass(unsafe_hash=True)  # hashable for caches; not frozen, so Hydra can merge
class ModelSection:
    name: str


@dataclass(unsafe_hash=True)  # hashable for caches; not frozen, so Hydra can merge
class TrainSection:
    local_epochs: int
    batch_size: int
    lr: float
    momentum: float


@dataclass(unsafe_hash=True)  # hashable for caches; not frozen, so Hydra can merge
class StrategySection:
    name: str
    fraction_train: float
    fraction_evaluate: float
    min_nodes: int
    proximal_mu: float
    trim_beta: float
    num_malicious: int
    num_to_select: int
    server_lr: float
    round_timeout_s: float


@dataclass(unsafe_hash=True)  # hashable for caches; not frozen, so Hydra can merge
class EvaluationSection:
    central: bool
    batch_size: int


@dataclass(unsafe_hash=True)  # hashable for caches; not frozen, so Hydra can merge
class PrivacySection:
    mode: str
    noise_multiplier: float
    clipping_norm: float
    delta: float
    sampling: str
    local_epsilon: float
    local_delta: float

    @property
    def central(self) -> bool:
        """Server-side or client-side clipping: the server noises the aggregate."""
        return self.mode in ("server", "client")


@dataclass(unsafe_hash=True)  # hashable for caches; not frozen, so Hydra can merge
class IdentitySection:
    enabled: bool
    strict: bool
    dev_keystores: bool
    federation: str
    receipts: bool


@dataclass(unsafe_hash=True)  # hashable for caches; not frozen, so Hydra can merge
class AttackSection:
    kind: str
    nodes: str

    def partitions(self) -> frozenset[int]:
        return frozenset(int(p) for p in self.nodes.replace(" ", "").split(",") if p)

    def kinds(self) -> list[str]:
        return [k for k in self.kind.replace(" ", "").split(",") if k]

    def kind_of(self, partition: int) -> str:
        """This partition's attack: one kind for all listed nodes, or one kind per node."""
        nodes = [int(p) for p in self.nodes.replace(" ", "").split(",") if p]
        if partition not in nodes:
            return "none"
        kinds = self.kinds()
        return kinds[0] if len(kinds) == 1 else kinds[nodes.index(partition)]


@dataclass(unsafe_hash=True)  # hashable for caches; not frozen, so Hydra can merge
class RewardSection:
    asset_code: str
    budget_per_round: str
    scorer: str
    scoring_budget: int
    validation_examples: int
    onboarding: str
    auth_required: bool
    auth_revocable: bool
    clawback: bool
    treasury_keystore: str
    payout: str
    quantum: str
    reclaim_after_days: int


def _check_section(check: type) -> type:
    """A run-config section with the scalar settings of one screening check (its own fields,
    types and names: the check class is the one place they are defined); also used for the
    plugin's other settings classes (reputation)."""
    hints = get_type_hints(check)
    scalar = [
        (f.name, hints[f.name]) for f in fields(check) if hints[f.name] in (bool, int, float, str)
    ]
    return make_dataclass(f"{check.__name__}Section", scalar, unsafe_hash=True)


def _screening_section() -> type:
    """``screening.*``: the stage's own keys, then one sub-section a registered check."""
    own: list[tuple[str, type]] = [
        ("enabled", bool),
        ("min_peers", int),
        ("watch_rounds", int),
        ("max_num_examples", int),
        ("validation_examples", int),
        ("bound", str),
        ("noise", float),
    ]
    checks = [(cls.name, _check_section(cls)) for cls in CHECKS]
    return make_dataclass("ScreeningSection", [*own, *checks], unsafe_hash=True)


def _ledger_section() -> type:
    """``ledger.*``: the app's own switch ``enabled`` (the LedgerStrategy on or off), then
    every field of :class:`~flwr_stellar.ledger.settings.LedgerSettings` with its name and type:
    the plugin's settings class is the one place they are defined, so a new one (``rpc_url``)
    needs only its default in pyproject.toml."""
    own = [(f.name, f.type) for f in fields(_check_section(LedgerSettings))]
    return make_dataclass("LedgerSection", [("enabled", bool), *own], unsafe_hash=True)


if TYPE_CHECKING:

    class LedgerSection:
        """``ledger.*`` (generated from flwr_stellar.ledger.settings.LedgerSettings at import)."""

        enabled: bool

        def __getattr__(self, name: str) -> Any: ...

    class ScreeningSection:
        """``screening.*`` (generated from strategies.screening.CHECKS at import)."""

        enabled: bool
        min_peers: int
        watch_rounds: int
        max_num_examples: int
        validation_examples: int
        bound: str
        noise: float

        def __getattr__(self, name: str) -> Any: ...

    class ReputationSection:
        """``reputation.*`` (generated from strategies.reputation.Reputation at import)."""

        enabled: bool
        initial: float
        gain: float
        keep: float
        holdback: float

else:
    LedgerSection = _ledger_section()
    ScreeningSection = _screening_section()
    ReputationSection = _check_section(Reputation)


@dataclass(unsafe_hash=True)  # hashable for caches; not frozen, so Hydra can merge
class AppConfig:
    """Everything a run of the Flower App needs; one field per run-config key."""

    seed: int
    num_rounds: int
    output_dir: str
    dataset: DatasetSection
    model: ModelSection
    train: TrainSection
    strategy: StrategySection
    identity: IdentitySection
    attack: AttackSection
    ledger: LedgerSection
    reward: RewardSection
    screening: ScreeningSection
    reputation: ReputationSection
    evaluation: EvaluationSection
    privacy: PrivacySection

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> AppConfig:
        """Build and validate from Flower's flat ``context.run_config``."""
        known = set(_flat_types(cls))
        unknown = sorted(set(run_config) - known)
        if unknown:
            raise ConfigError(f"unknown run-config key(s): {', '.join(unknown)}")
        missing = sorted(known - set(run_config))
        if missing:
            raise ConfigError(f"missing run-config key(s): {', '.join(missing)}")
        config = _build(cls, run_config, prefix="")
        config.validate()
        return config

    def to_run_config(self) -> dict[str, Scalar]:
        """Flatten to Flower's ``"section.key"`` form (the inverse of from_run_config)."""
        return flatten_run_config(asdict(self))

    def ledger_settings(self) -> LedgerSettings:
        """The plugin's ledger settings from this app's ``ledger.*`` keys."""
        return _same_fields(LedgerSettings, self.ledger)

    def reward_settings(self) -> RewardSettings:
        """The plugin's reward settings from this app's ``reward.*`` keys."""
        return _same_fields(RewardSettings, self.reward)

    def screening_settings(
        self, validation: Callable[[ArrayRecord], float] | None = None
    ) -> Screening:
        """The plugin's screening stage from ``screening.*`` (one sub-section a check)."""
        s = self.screening
        options = {cls.name: asdict(getattr(s, cls.name)) for cls in CHECKS}
        return Screening(
            enabled=s.enabled,
            checks=default_checks(options, validation),
            min_peers=s.min_peers,
            watch_rounds=s.watch_rounds,
        )

    def norm_bound(self) -> NormBound:
        """How accepted updates are bounded to the round's median norm (``screening.bound``)."""
        return NormBound(self.screening.bound, self.screening.noise)

    def privacy_settings(self, num_sampled: int) -> PrivacySettings | None:
        """What the run's manifests state (``privacy.*``); None without DP.

        Parameters
        ----------
        num_sampled : int
            Central DP: the nodes a round samples, which the noise is calibrated to.
        """
        p = self.privacy
        if p.mode == "local":
            return PrivacySettings.local(
                p.clipping_norm, 2 * p.clipping_norm, p.local_epsilon, p.local_delta, delta=p.delta
            )
        if p.central:
            mechanism = "server-clipping" if p.mode == "server" else "client-clipping"
            return PrivacySettings(
                mechanism, p.noise_multiplier, p.clipping_norm, num_sampled, p.delta, p.sampling
            )
        return None

    def intake_settings(self) -> IntakeSettings:
        """Intake: claims bounded by what a node trains on, the app's own metric keys."""
        bound = self.screening.max_num_examples or self.dataset.max_train_examples
        return IntakeSettings(
            max_num_examples=bound or 1_000_000,
            train_metrics=TRAIN_METRICS,
            evaluate_metrics=EVALUATE_METRICS,
        )

    def plugin_config(
        self, output_dir: Path, validation: Callable[[ArrayRecord], float] | None = None
    ) -> PluginConfig:
        """The LedgerStrategy's config for a run writing to ``output_dir``."""
        return PluginConfig(
            output_dir=str(output_dir),
            ledger=self.ledger_settings(),
            reward=self.reward_settings(),
            screening=self.screening_settings(validation),
            intake=self.intake_settings(),
            bound=self.norm_bound(),
            reputation=_same_fields(Reputation, self.reputation),
            scorer=self.reward.scorer,
            scoring_budget=self.reward.scoring_budget,
            strict=self.identity.strict,
            run_config=self.to_run_config(),
            receipts=self.identity.receipts,
        )

    def validate(self) -> None:
        """Check value ranges; raise ConfigError naming the first offending key."""
        d, s, t, lg = self.dataset, self.strategy, self.train, self.ledger
        rules: list[tuple[str, bool, str]] = [
            ("seed", self.seed >= 0, "must be >= 0"),
            ("num_rounds", self.num_rounds >= 1, "must be >= 1"),
            ("dataset.name", d.name in DATASETS, f"must be one of {DATASETS}"),
            (
                "dataset.partitioner",
                d.partitioner in PARTITIONERS,
                f"must be one of {PARTITIONERS}",
            ),
            ("dataset.alpha", d.alpha > 0, "must be > 0"),
            ("dataset.min_partition_size", d.min_partition_size >= 0, "must be >= 0"),
            ("dataset.val_fraction", 0 <= d.val_fraction < 1, "must be in [0, 1)"),
            ("dataset.server_val_size", 0 <= d.server_val_size <= 30000, "must be in [0, 30000]"),
            ("dataset.max_train_examples", d.max_train_examples >= 0, "must be >= 0"),
            ("model.name", self.model.name in MODEL_NAMES, f"must be one of {MODEL_NAMES}"),
            ("train.local_epochs", t.local_epochs >= 1, "must be >= 1"),
            ("train.batch_size", t.batch_size >= 1, "must be >= 1"),
            ("train.lr", t.lr > 0, "must be > 0"),
            ("train.momentum", 0 <= t.momentum < 1, "must be in [0, 1)"),
            ("strategy.name", s.name in STRATEGY_NAMES, f"must be one of {STRATEGY_NAMES}"),
            ("strategy.fraction_train", 0 < s.fraction_train <= 1, "must be in (0, 1]"),
            (
                "strategy.fraction_evaluate",
                0 <= s.fraction_evaluate <= 1,
                "must be in [0, 1] (0 disables client-side evaluation)",
            ),
            ("strategy.min_nodes", s.min_nodes >= 1, "must be >= 1"),
            ("strategy.proximal_mu", s.proximal_mu >= 0, "must be >= 0"),
            ("strategy.trim_beta", 0 <= s.trim_beta < 0.5, "must be in [0, 0.5)"),
            ("strategy.num_malicious", s.num_malicious >= 0, "must be >= 0"),
            ("strategy.num_to_select", s.num_to_select >= 1, "must be >= 1"),
            ("strategy.server_lr", s.server_lr > 0, "must be > 0"),
            ("strategy.round_timeout_s", s.round_timeout_s > 0, "must be > 0"),
            ("dataset.label_noise", 0 <= d.label_noise <= 1, "must be in [0, 1]"),
            (
                "screening.validation_examples",
                self.screening.validation_examples >= 0,
                "must be >= 0 (0 = all)",
            ),
            (
                "reward.validation_examples",
                self.reward.validation_examples >= 0,
                "must be >= 0 (0 = the whole server validation split)",
            ),
            ("identity.federation", bool(self.identity.federation), "must not be empty"),
            (
                "attack.kind",
                bool(self.attack.kinds()) and all(k in ATTACK_KINDS for k in self.attack.kinds()),
                f"must be one of {ATTACK_KINDS}, or one per attack.nodes entry, comma-separated",
            ),
            (
                "attack.kind",
                len(self.attack.kinds()) in (1, len(self.attack.partitions())),
                "must name one kind, or exactly one per attack.nodes entry",
            ),
            (
                "attack.nodes",
                _is_id_list(self.attack.nodes),
                'must be comma-separated partition ids, e.g. "0,3"',
            ),
            (
                "ledger.enabled",
                not lg.enabled or self.identity.enabled,
                "needs identity.enabled = true (rewards go to signing pseudonyms)",
            ),
            ("evaluation.batch_size", self.evaluation.batch_size >= 1, "must be >= 1"),
            ("privacy.mode", self.privacy.mode in PRIVACY_MODES, f"must be one of {PRIVACY_MODES}"),
            ("privacy.sampling", self.privacy.sampling in SAMPLING, f"must be one of {SAMPLING}"),
            (
                "strategy.name",
                not self.privacy.central or s.name in PRIVATE_STRATEGIES,
                f"must be one of {PRIVATE_STRATEGIES} with privacy.mode = "
                f"{self.privacy.mode} (the accounting is for FedAvg's weighted mean)",
            ),
            (
                "screening.enabled",
                self.privacy.mode != "client" or not lg.enabled or self.screening.enabled,
                "must be true with privacy.mode = client (the server checks every update is "
                "within the clipping norm)",
            ),
        ]
        for key, ok, why in rules:
            if not ok:
                raise ConfigError(f"{key} {why}, got {_lookup(self, key)!r}")
        try:  # the plugin's settings check the ledger.*, reward.*, screening.*, privacy.* values
            self.plugin_config(Path("."), validation=lambda arrays: 0.0)
            self.privacy_settings(num_sampled=1)
        except (TypeError, ValueError) as err:
            message = str(err)
            for plugin_name, key in PLUGIN_FIELDS:
                message = message.replace(plugin_name, key)
            raise ConfigError(message) from None


SettingsT = TypeVar("SettingsT", bound="DataclassInstance")


def _same_fields(cls: type[SettingsT], section: Any, **overrides: Any) -> SettingsT:
    """A plugin settings object from the run-config section holding keys of the same names
    (the app's extra keys, like ``ledger.enabled``, stay behind)."""
    values = {f.name: getattr(section, f.name) for f in fields(cls) if hasattr(section, f.name)}
    return cls(**(values | overrides))


def flatten_run_config(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Scalar]:
    """Join nested keys with dots, as Flower's run config does (``{"ledger": {"db": ""}}`` ->
    ``{"ledger.db": ""}``): the one form both front doors, ``flwr run`` and Hydra, hand over.

    Parameters
    ----------
    nested : Mapping
        Tables of scalars, e.g. ``[tool.flwr.app.config]`` or a composed Hydra config.
    prefix : str
        Prepended to every key (the recursion's own path; default: none).
    """
    flat: dict[str, Scalar] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_run_config(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def load_default_run_config(project_dir: Path = PROJECT_DIR) -> dict[str, Scalar]:
    """The defaults from ``[tool.flwr.app.config]``, flattened like Flower does."""
    pyproject = project_dir / "pyproject.toml"
    try:
        with pyproject.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as err:
        raise ConfigError(
            f"{pyproject} not found: run from a flwr-stellar checkout (the Flower App folder)"
        ) from err
    return flatten_run_config(data["tool"]["flwr"]["app"]["config"])


def default_config(project_dir: Path = PROJECT_DIR) -> AppConfig:
    return AppConfig.from_run_config(load_default_run_config(project_dir))


def _flat_types(cls: type, prefix: str = "") -> dict[str, type]:
    out: dict[str, type] = {}
    hints = get_type_hints(cls)
    for f in fields(cls):
        typ = hints[f.name]
        if is_dataclass(typ):
            out.update(_flat_types(typ, prefix=f"{prefix}{f.name}."))  # type: ignore[arg-type]
        else:
            out[f"{prefix}{f.name}"] = typ
    return out


def _build(cls: type, flat: Mapping[str, Any], prefix: str) -> Any:
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        typ = hints[f.name]
        key = f"{prefix}{f.name}"
        if is_dataclass(typ):
            kwargs[f.name] = _build(typ, flat, prefix=f"{key}.")  # type: ignore[arg-type]
        else:
            kwargs[f.name] = _coerce(key, flat[key], typ)
    return cls(**kwargs)


def _coerce(key: str, value: Any, typ: type) -> Scalar:
    """Accept exactly the TOML type (ints widen to float); never parse strings."""
    if typ is bool:
        ok = isinstance(value, bool)
    elif typ is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif typ is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{key} must be of type {typ.__name__}, got {value!r}")
    return value


def _is_id_list(text: str) -> bool:
    parts = [p for p in text.replace(" ", "").split(",") if p]
    return all(p.isdigit() for p in parts) and (not parts or "" not in text.split(","))


def _lookup(config: AppConfig, dotted: str) -> Any:
    obj: Any = config
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj
