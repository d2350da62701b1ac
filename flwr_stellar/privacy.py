"""Differential privacy beside the ledger: what a run promises, and the (ε, δ) it has spent.

Flower's DP wrappers (``DifferentialPrivacyServerSideFixedClipping``,
``DifferentialPrivacyClientSideFixedClipping``) and ``LocalDpMod`` add the noise; this module
says, per round, how much privacy that noise bought, in a form an auditor can recompute from the
round manifests alone:

- :class:`PrivacySettings`: the mechanism and its parameters, passed to
  ``LedgerStrategy.wrap(..., privacy=...)`` (or read from a Flower DP strategy or mod with
  :meth:`PrivacySettings.of`);
- :func:`round_step`: what one round released, as the accountant composes it (the effective
  noise multiplier and the sampling rate);
- :func:`epsilon`: ε at δ after a sequence of such releases, by Opacus' RDP accountant;
- :class:`PrivacyStatement`: the optional ``privacy`` field of a round manifest (strings and
  ints only, as manifests are canonical JSON without floats).

Central DP (server- or client-side fixed clipping). The server adds Gaussian noise of standard
deviation ``z x C / m`` to the round's aggregate, where ``m`` is the number of sampled nodes the
wrapper was built for. The aggregate is FedAvg's weighted mean ``sum(w_i u_i) / W`` of updates of
norm at most ``C``; one node's update moves it by at most ``C x max(w) / W`` (weights held
fixed), so the round's *effective* noise multiplier is ``z x (W / max(w)) / m``: exactly ``z``
when all ``m`` nodes are accepted with equal claims, less when screening rejected some or claims
differ. Each round that released a model is one step of the sampled Gaussian mechanism at
``q = sampled / population`` (``sampling="poisson"``; amplification by sampling assumes nodes
are drawn independently, which Flower's fixed-size draw only approximates: ``sampling="none"``
states the guarantee without it, ``q = 1``).

Local DP (``LocalDpMod``). Each node clips its update to ``C`` and adds Gaussian noise of
standard deviation ``sigma`` before signing it. Any two datasets of one node give updates at most
``2C`` apart, so each release is a Gaussian mechanism with noise multiplier ``sigma / (2C)``;
a node sampled in every round releases once a round, and the ``T`` releases are composed by the
same RDP accountant (``q = 1``). That is far tighter than basic composition (``T x epsilon``,
``T x delta`` of Flower's per-release calibration) and, unlike that calibration's classic formula,
holds for per-release epsilons above 1.

The accountant is Opacus' ``RDPAccountant`` (its default orders, its RDP-to-(ε, δ) conversion):
imported on first use, so that runs without DP never load it (it imports torch).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = [
    "ACCOUNTANT",
    "CLIP_TOLERANCE",
    "MECHANISMS",
    "SAMPLING",
    "PrivacySettings",
    "PrivacyStatement",
    "epsilon",
    "round_step",
]

MECHANISMS = ("server-clipping", "client-clipping", "local")
SAMPLING = ("poisson", "none")
ACCOUNTANT = "opacus-rdp"  # Opacus' RDPAccountant, default orders
# Client-side clipping: the server accepts an update up to C x (1 + this) (float32 rounding of a
# clipped update) and accounts its sensitivity as that, so the statement stays an upper bound.
CLIP_TOLERANCE = 1e-4
EPSILON_DIGITS = 6  # significant digits of the stated epsilon


def _real(owner: str, name: str, value: object, *, positive: bool = True) -> float:
    """``value`` as a finite float (``True`` is not a number), or ValueError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{owner}.{name} must be > 0, got {value!r}")
    return float(value)


def _text(value: float) -> str:
    """A float as manifests carry it: Python's shortest round-trip repr."""
    return repr(float(value))


@dataclass(frozen=True)
class PrivacySettings:
    """The differential privacy a run promises, as its manifests state it each round.

    Parameters
    ----------
    mechanism : str
        ``server-clipping`` (Flower's ``DifferentialPrivacyServerSideFixedClipping``),
        ``client-clipping`` (``DifferentialPrivacyClientSideFixedClipping`` with
        ``fixedclipping_mod`` on the nodes) or ``local`` (``LocalDpMod`` on the nodes).
    noise_multiplier : float
        Central: the wrapper's ``noise_multiplier`` ``z`` (noise std ``z x C / num_sampled``).
        Local: ``sigma / (2 x clipping_norm)``, the noise of one release over its sensitivity
        (:meth:`local` computes it from the mod's parameters).
    clipping_norm : float
        ``C``, the L2 bound on an update (the wrapper's or the mod's ``clipping_norm``).
    num_sampled : int (default: 0)
        Central: the wrapper's ``num_sampled_clients``, the count its noise is calibrated to
        (>= 1). Local: 0.
    delta : float (default: 1e-5)
        The δ the run's ε is stated at (0 < δ < 1; below one over the number of nodes).
    sampling : str (default: "poisson")
        Central: ``poisson`` counts the amplification of sampling ``q = sampled / population``
        per round; ``none`` states the guarantee without it (``q = 1``). Local: ``none``.
    """

    mechanism: str
    noise_multiplier: float
    clipping_norm: float
    num_sampled: int = 0
    delta: float = 1e-5
    sampling: str = "poisson"

    def __post_init__(self) -> None:
        owner = "PrivacySettings"
        if self.mechanism not in MECHANISMS:
            raise ValueError(
                f"{owner}.mechanism must be one of {MECHANISMS}, got {self.mechanism!r}"
            )
        _real(owner, "noise_multiplier", self.noise_multiplier)
        _real(owner, "clipping_norm", self.clipping_norm)
        _real(owner, "delta", self.delta)
        if not self.delta < 1:
            raise ValueError(f"{owner}.delta must be < 1, got {self.delta!r}")
        if isinstance(self.num_sampled, bool) or not isinstance(self.num_sampled, int):
            raise ValueError(f"{owner}.num_sampled must be an int, got {self.num_sampled!r}")
        if self.sampling not in SAMPLING:
            raise ValueError(f"{owner}.sampling must be one of {SAMPLING}, got {self.sampling!r}")
        if self.central and self.num_sampled < 1:
            raise ValueError(
                f"{owner}.num_sampled must be >= 1 for central DP (the wrapper's "
                f"num_sampled_clients), got {self.num_sampled!r}"
            )
        if not self.central and (self.num_sampled != 0 or self.sampling != "none"):
            raise ValueError(
                f"{owner}.num_sampled must be 0 and {owner}.sampling 'none' for local DP "
                "(each node noises its own update; the server's sampling amplifies nothing)"
            )

    @property
    def central(self) -> bool:
        """True for the server's noise (server- or client-side clipping)."""
        return self.mechanism != "local"

    @classmethod
    def server_side(
        cls,
        noise_multiplier: float,
        clipping_norm: float,
        num_sampled: int,
        *,
        delta: float = 1e-5,
        sampling: str = "poisson",
    ) -> PrivacySettings:
        """Central DP, the server clipping (``DifferentialPrivacyServerSideFixedClipping``)."""
        return cls("server-clipping", noise_multiplier, clipping_norm, num_sampled, delta, sampling)

    @classmethod
    def client_side(
        cls,
        noise_multiplier: float,
        clipping_norm: float,
        num_sampled: int,
        *,
        delta: float = 1e-5,
        sampling: str = "poisson",
    ) -> PrivacySettings:
        """Central DP, the nodes clipping (``DifferentialPrivacyClientSideFixedClipping``)."""
        return cls("client-clipping", noise_multiplier, clipping_norm, num_sampled, delta, sampling)

    @classmethod
    def local(
        cls,
        clipping_norm: float,
        sensitivity: float,
        epsilon: float,
        delta_release: float,
        *,
        delta: float = 1e-5,
    ) -> PrivacySettings:
        """Local DP from ``LocalDpMod(clipping_norm, sensitivity, epsilon, delta)``'s parameters.

        The mod's noise is ``sigma = sensitivity x sqrt(2 ln(1.25 / delta_release)) /
        epsilon``; whatever ``sensitivity`` it was given, a clipped update's is ``2 x
        clipping_norm``, and that is what the statement divides by.

        Parameters
        ----------
        clipping_norm, sensitivity, epsilon, delta_release : float
            The mod's constructor arguments (its ``delta`` is ``delta_release`` here).
        delta : float (default: 1e-5)
            The δ the run's composed ε is stated at.
        """
        owner = "PrivacySettings.local"
        c = _real(owner, "clipping_norm", clipping_norm)
        s = _real(owner, "sensitivity", sensitivity)
        e = _real(owner, "epsilon", epsilon)
        d = _real(owner, "delta_release", delta_release)
        if not d < 1:
            raise ValueError(f"{owner}.delta_release must be < 1, got {delta_release!r}")
        sigma = s * math.sqrt(2 * math.log(1.25 / d)) / e
        return cls("local", sigma / (2 * c), c, 0, delta, "none")

    @classmethod
    def of(cls, dp: object, *, delta: float = 1e-5, sampling: str = "poisson") -> PrivacySettings:
        """The settings of one of Flower's DP strategies or of a ``LocalDpMod``, from its public
        constructor values (``noise_multiplier``, ``clipping_norm``, ``num_sampled_clients``;
        the mod's ``clipping_norm``, ``sensitivity``, ``epsilon``, ``delta``).

        Parameters
        ----------
        dp : Strategy or LocalDpMod
            What adds the noise: ``DifferentialPrivacyServerSideFixedClipping``,
            ``DifferentialPrivacyClientSideFixedClipping`` or ``LocalDpMod``.
        delta : float (default: 1e-5)
            The δ to state ε at.
        sampling : str (default: "poisson")
            Central only: see the class.

        Raises
        ------
        ValueError
            An adaptive-clipping wrapper (its clipping norm moves every round and its norm-bit
            noise would have to be accounted with it: not supported), or anything else.
        """
        from flwr.clientapp.mod import LocalDpMod
        from flwr.serverapp.strategy import (
            DifferentialPrivacyClientSideAdaptiveClipping,
            DifferentialPrivacyClientSideFixedClipping,
            DifferentialPrivacyServerSideAdaptiveClipping,
            DifferentialPrivacyServerSideFixedClipping,
        )

        if isinstance(dp, LocalDpMod):
            return cls.local(dp.clipping_norm, dp.sensitivity, dp.epsilon, dp.delta, delta=delta)
        adaptive = (
            DifferentialPrivacyServerSideAdaptiveClipping,
            DifferentialPrivacyClientSideAdaptiveClipping,
        )
        if isinstance(dp, adaptive):
            raise ValueError(
                f"{type(dp).__name__}: adaptive clipping is not accounted (the clipping norm "
                "changes every round and the noisy norm-bit count spends privacy too); use "
                "the fixed-clipping wrappers"
            )
        if isinstance(
            dp,
            DifferentialPrivacyServerSideFixedClipping | DifferentialPrivacyClientSideFixedClipping,
        ):
            server = isinstance(dp, DifferentialPrivacyServerSideFixedClipping)
            return cls(
                "server-clipping" if server else "client-clipping",
                dp.noise_multiplier,
                dp.clipping_norm,
                dp.num_sampled_clients,
                delta,
                sampling,
            )
        raise ValueError(
            f"PrivacySettings.of: {type(dp).__name__} is not one of Flower's fixed-clipping DP "
            "strategies or a LocalDpMod"
        )

    def describe(self) -> dict[str, str | int]:
        """The settings as canonical data (floats as their repr): the run's config hash."""
        doc: dict[str, str | int] = {}
        for name, value in asdict(self).items():
            doc[name] = value if isinstance(value, int | str) else _text(value)
        return doc


def round_step(
    settings: PrivacySettings,
    weights: Sequence[int],
    sampled: int,
    population: int,
) -> tuple[float, float] | None:
    """What one round released, as the accountant composes it: ``(noise multiplier, q)``.

    Parameters
    ----------
    settings : PrivacySettings
        The run's.
    weights : sequence of int
        Central: the claims (``num-examples``) of the updates the round aggregated, empty when
        it released no model. Local: ignored.
    sampled : int
        Nodes instructed to train this round (local: each of them released its update).
    population : int
        Nodes connected when the round was configured.

    Returns
    -------
    tuple of float or None
        ``(effective noise multiplier, sampling rate)``, or None when the round released
        nothing (no model; local: no node was instructed).
    """
    if not settings.central:
        return (settings.noise_multiplier, 1.0) if sampled > 0 else None
    if not weights:
        return None
    w = [max(1, int(x)) for x in weights]  # intake admits only positive claims
    z = settings.noise_multiplier * (sum(w) / max(w)) / settings.num_sampled
    if settings.mechanism == "client-clipping":
        z /= 1 + CLIP_TOLERANCE  # accepted updates reach C x (1 + tolerance)
    q = 1.0
    if settings.sampling == "poisson" and population > 0:
        q = min(1.0, max(sampled, 1) / population)
    return z, q


def epsilon(steps: Sequence[tuple[float, float]], delta: float) -> float:
    """ε at ``delta`` after the sampled Gaussian releases ``steps`` (Opacus' RDP accountant).

    Parameters
    ----------
    steps : sequence of (noise multiplier, sampling rate)
        One per release, in order (0.0 for none).
    delta : float
        Target δ.
    """
    if not steps:
        return 0.0
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    for z, q in steps:
        accountant.step(noise_multiplier=z, sample_rate=q)
    with warnings.catch_warnings():
        # "optimal order is the smallest/largest alpha": the bound is then looser than it could
        # be, never optimistic; the default orders are the ones every statement uses
        warnings.simplefilter("ignore", UserWarning)
        return float(accountant.get_epsilon(delta))


def epsilon_text(value: float) -> str:
    """ε as a statement carries it (six significant digits)."""
    return f"{value:.{EPSILON_DIGITS}g}"


@dataclass(frozen=True)
class PrivacyStatement:
    """A round manifest's ``privacy`` field: the run's parameters and ε so far.

    Every value is a string or an int (manifests hold no floats); numbers are Python reprs.
    Written only when the run has DP on, so that manifests of other runs keep their bytes.

    Parameters
    ----------
    mechanism, noise_multiplier, clipping_norm, num_sampled, delta, sampling : str or int
        The run's :class:`PrivacySettings`.
    sampled : int
        Nodes instructed to train this round.
    population : int
        Nodes connected when the round was configured.
    effective_noise_multiplier : str
        This round's release (:func:`round_step`); ``""`` when it released nothing.
    sample_rate : str
        ``q`` of this round's release; ``""`` when it released nothing.
    releases : int
        Releases composed so far, this round's included.
    epsilon : str
        ε at ``delta`` after them (:func:`epsilon_text`).
    accountant : str
        ``opacus-rdp``.
    """

    mechanism: str
    noise_multiplier: str
    clipping_norm: str
    num_sampled: int
    delta: str
    sampling: str
    sampled: int
    population: int
    effective_noise_multiplier: str
    sample_rate: str
    releases: int
    epsilon: str
    accountant: str = ACCOUNTANT

    def __post_init__(self) -> None:
        hints = {f.name: f.type for f in fields(self)}
        for name, typ in hints.items():
            value = getattr(self, name)
            want = int if typ == "int" else str
            if type(value) is not want:
                raise TypeError(f"PrivacyStatement.{name} must be a {want.__name__}")
        for name in ("sampled", "population", "releases", "num_sampled"):
            if getattr(self, name) < 0:
                raise ValueError(f"PrivacyStatement.{name} must be >= 0")
        if (self.effective_noise_multiplier == "") != (self.sample_rate == ""):
            raise ValueError("PrivacyStatement: a release states both its z and its q")
        for name in ("noise_multiplier", "clipping_norm", "delta"):
            _number(self, name)
        _number(self, "epsilon", infinite=True)  # no noise to speak of: no privacy
        if self.effective_noise_multiplier:
            _number(self, "effective_noise_multiplier")
            _number(self, "sample_rate")
        self.settings()  # the run's parameters must be valid settings

    def settings(self) -> PrivacySettings:
        """The run's parameters, as settings (ValueError if they are not valid ones)."""
        return PrivacySettings(
            self.mechanism,
            float(self.noise_multiplier),
            float(self.clipping_norm),
            self.num_sampled,
            float(self.delta),
            self.sampling,
        )

    @property
    def epsilon_value(self) -> float:
        return float(self.epsilon)

    @property
    def delta_value(self) -> float:
        return float(self.delta)

    def step(self) -> tuple[float, float] | None:
        """This round's release as stated (None: it released nothing)."""
        if not self.effective_noise_multiplier:
            return None
        return float(self.effective_noise_multiplier), float(self.sample_rate)

    @classmethod
    def for_round(
        cls,
        settings: PrivacySettings,
        sampled: int,
        population: int,
        step: tuple[float, float] | None,
        steps: Sequence[tuple[float, float]],
    ) -> PrivacyStatement:
        """The statement of a round whose release is ``step`` (None: none), after ``steps``
        (every release of the run so far, this one included)."""
        params = settings.describe()
        return cls(
            mechanism=settings.mechanism,
            noise_multiplier=str(params["noise_multiplier"]),
            clipping_norm=str(params["clipping_norm"]),
            num_sampled=settings.num_sampled,
            delta=str(params["delta"]),
            sampling=settings.sampling,
            sampled=sampled,
            population=population,
            effective_noise_multiplier=_text(step[0]) if step is not None else "",
            sample_rate=_text(step[1]) if step is not None else "",
            releases=len(steps),
            epsilon=epsilon_text(epsilon(steps, settings.delta)),
        )

    def to_doc(self) -> dict[str, str | int]:
        return dict(asdict(self))

    @classmethod
    def from_doc(cls, doc: object) -> PrivacyStatement:
        """Decode a manifest's ``privacy`` object (ValueError/TypeError when malformed)."""
        if not isinstance(doc, Mapping):
            raise TypeError("privacy must be an object")
        names = {f.name for f in fields(cls)}
        if set(doc) != names:
            raise ValueError(f"privacy fields are {sorted(doc)}, expected {sorted(names)}")
        values: dict[str, Any] = dict(doc)
        return cls(**values)


def _number(statement: PrivacyStatement, name: str, *, infinite: bool = False) -> float:
    text = getattr(statement, name)
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"PrivacyStatement.{name} is not a number: {text[:40]!r}") from None
    if math.isnan(value) or value < 0 or (math.isinf(value) and not infinite):
        raise ValueError(f"PrivacyStatement.{name} must be finite and >= 0: {text[:40]!r}")
    canonical = epsilon_text(value) if name == "epsilon" else _text(value)
    if text != canonical:  # one text per number, as the server writes it
        raise ValueError(f"PrivacyStatement.{name} {text[:40]!r} is not written {canonical!r}")
    return value
