"""Run-config schema: defaults, validation naming the key, Hydra <-> run-config round trip."""

import re
from dataclasses import replace

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from flwr_stellar.app.config import PROJECT_DIR, AppConfig, ConfigError, load_default_run_config
from flwr_stellar.app.experiment import to_run_config
from flwr_stellar.app.simulation import fuse_run_config


def compose_cfg(overrides: list[str]):
    with initialize_config_dir(config_dir=str(PROJECT_DIR / "conf"), version_base=None):
        return compose(config_name="config", overrides=overrides)


def test_pyproject_defaults_are_valid(defaults: AppConfig) -> None:
    assert defaults.strategy.name == "fedavg"
    assert defaults.to_run_config() == load_default_run_config()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("num_rounds", 0, "num_rounds must be >= 1"),
        ("dataset.alpha", 0.0, "dataset.alpha must be > 0"),
        ("dataset.alpha", -1.0, "dataset.alpha must be > 0"),
        ("strategy.fraction_train", 0.0, "strategy.fraction_train must be in (0, 1]"),
        ("strategy.fraction_train", 1.5, "strategy.fraction_train must be in (0, 1]"),
        ("strategy.fraction_evaluate", 1.01, "strategy.fraction_evaluate must be in [0, 1]"),
        ("strategy.name", "fedfoo", "strategy.name must be one of"),
        ("model.name", "resnet", "model.name must be one of"),
        ("dataset.partitioner", "pathological", "dataset.partitioner must be one of"),
        ("train.lr", 0.0, "train.lr must be > 0"),
        ("strategy.trim_beta", 0.5, "strategy.trim_beta must be in [0, 0.5)"),
        ("identity.enabled", False, "ledger.enabled needs identity.enabled = true"),
        ("ledger.backend", "core", "ledger.backend must be one of"),
        ("ledger.preset", "mainnet", "ledger.preset must be one of"),
        ("reward.budget_per_round", "0.000000001", "reward.budget_per_round must be a decimal"),
        ("reward.budget_per_round", "-5", "reward.budget_per_round must be a decimal"),
        ("reward.asset_code", "DLC!", "reward.asset_code must be 1-12"),
        ("reward.scorer", "shapley", "reward.scorer must be one of"),
        ("reward.clawback", True, "reward.clawback needs auth_revocable=True"),
        (
            "screening.centre_cosine.min_cosine",
            1.5,
            "screening.centre_cosine.min_cosine must be in [-1, 1]",
        ),
        (
            "screening.norm_outlier.factor",
            0.5,
            "screening.norm_outlier.factor must be 0 or >= 1",
        ),
        ("screening.min_peers", 1, "screening.min_peers must be >= 2"),
        ("attack.kind", "nan,signflip", "attack.kind must name one kind, or exactly one per"),
        ("attack.kind", "nuke", "attack.kind must be one of"),
    ],
)
def test_invalid_values_rejected_naming_key(key: str, value: object, message: str) -> None:
    flat = load_default_run_config() | {key: value}
    with pytest.raises(ConfigError, match=re.escape(message)):
        AppConfig.from_run_config(flat)


def test_pubnet_needs_explicit_confirmation() -> None:
    pubnet = load_default_run_config() | {"ledger.backend": "horizon", "ledger.preset": "pubnet"}
    with pytest.raises(ConfigError, match=r"ledger\.allow_pubnet must be True"):
        AppConfig.from_run_config(pubnet)
    assert AppConfig.from_run_config(pubnet | {"ledger.allow_pubnet": True}).ledger.allow_pubnet
    custom = load_default_run_config() | {"ledger.backend": "horizon", "ledger.preset": "custom"}
    with pytest.raises(ConfigError, match=r"ledger\.horizon_url must be set"):
        AppConfig.from_run_config(custom)


def test_attack_kinds_pair_with_nodes() -> None:
    cfg = AppConfig.from_run_config(
        load_default_run_config() | {"attack.kind": "nan,signflip", "attack.nodes": "1,4"}
    )
    assert [cfg.attack.kind_of(p) for p in (0, 1, 4)] == ["none", "nan", "signflip"]


def test_wrong_type_and_unknown_key_named() -> None:
    with pytest.raises(ConfigError, match=r"dataset\.alpha must be of type float"):
        AppConfig.from_run_config(load_default_run_config() | {"dataset.alpha": "0.5"})
    with pytest.raises(ConfigError, match="num_rounds must be of type int"):
        AppConfig.from_run_config(load_default_run_config() | {"num_rounds": 2.5})
    with pytest.raises(ConfigError, match=r"unknown run-config key.*strategy\.bogus"):
        AppConfig.from_run_config(load_default_run_config() | {"strategy.bogus": 1})
    with pytest.raises(ConfigError, match="is not present"):
        fuse_run_config({"dataset.alhpa": 0.1})


def test_ints_widen_to_float_but_bools_do_not() -> None:
    cfg = AppConfig.from_run_config(load_default_run_config() | {"train.lr": 1})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    with pytest.raises(ConfigError, match=r"evaluation\.central must be of type bool"):
        AppConfig.from_run_config(load_default_run_config() | {"evaluation.central": 1})


def test_hydra_defaults_equal_pyproject_defaults() -> None:
    assert to_run_config(compose_cfg([])) == load_default_run_config()


@pytest.mark.parametrize(
    "overrides",
    [
        ["strategy=fedprox", "strategy.proximal_mu=0.5", "seed=7"],
        ["dataset=fashion_mnist_iid", "model=cnn_small", "num_rounds=3"],
        ["strategy=multikrum", "strategy.num_malicious=1", "train.lr=0.01"],
        ["ledger=testnet", "reward.scorer=flat", "screening.norm_outlier.factor=5.0"],
    ],
)
def test_hydra_to_run_config_round_trips(overrides: list[str]) -> None:
    run_config = to_run_config(compose_cfg(overrides))
    again = AppConfig.from_run_config(run_config)
    assert again.to_run_config() == run_config
    # Flower itself accepts it: every key exists in [tool.flwr.app.config].
    assert fuse_run_config(run_config) == run_config
    for override in overrides:
        key, value = override.split("=")
        if "." in key or key in ("seed", "num_rounds"):
            assert str(run_config[key]) == value
        elif key == "ledger":
            assert run_config["ledger.preset"] == value
        else:
            assert run_config[f"{key}.name"] == value.replace("fashion_mnist_iid", "fashion_mnist")


def test_hydra_rejects_unknown_key_and_bad_type_naming_key() -> None:
    with pytest.raises(ConfigCompositionException) as info:
        compose_cfg(["strategy.bogus=1"])
    assert isinstance(info.value.__cause__, ConfigKeyError | ConfigAttributeError)
    assert "strategy.bogus" in str(info.value.__cause__)
    with pytest.raises(ConfigCompositionException) as info:
        compose_cfg(["dataset.alpha=abc"])
    assert isinstance(info.value.__cause__, ValidationError)
    assert "dataset.alpha" in str(info.value.__cause__)


def test_hydra_values_checked_by_schema_rules() -> None:
    with pytest.raises(ConfigError, match=r"strategy.fraction_train must be in \(0, 1\]"):
        to_run_config(compose_cfg(["strategy.fraction_train=0"]))


def test_config_objects_are_hashable(defaults: AppConfig) -> None:
    assert hash(defaults.dataset) == hash(replace(defaults.dataset))


def test_screening_section_is_derived_from_the_check_classes(defaults) -> None:
    """Every registered check has a screening.<name> section whose keys are its own fields,
    and the pyproject defaults equal the check classes' own defaults, except the data checks
    the reference app switches on because it holds server data (the library cannot)."""
    from dataclasses import MISSING, fields, replace

    from strategies.screening import CHECKS, Screening

    app_enables = {"screening.lone_step.enabled"}
    keys = set(defaults.to_run_config())
    for cls in CHECKS:
        for f in fields(cls):
            if f.default is MISSING or not isinstance(f.default, bool | int | float | str):
                continue  # callbacks (validation) are not run-config keys
            key = f"screening.{cls.name}.{f.name}"
            assert key in keys, key
            value = getattr(getattr(defaults.screening, cls.name), f.name)
            assert value == (True if key in app_enables else f.default), key
    off = replace(
        defaults.screening, lone_step=replace(defaults.screening.lone_step, enabled=False)
    )
    built = replace(defaults, screening=off).screening_settings()
    library = Screening()
    assert [c.name for c in built.checks] == [c.name for c in library.checks]
    assert built.describe() == library.describe()
