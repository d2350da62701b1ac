"""Intake: every reply decoded exactly once, strictly, against the server's own reference.

It runs right after verification (so nothing unauthenticated is decoded, and every rejection
names the pseudonym that signed the reply).

Nothing a node sends may raise out of the strategy, and the inner strategy (FedAvg, Krum, ...)
must only ever see replies that cannot raise in it. Intake is where that is decided, once:

- the record layout is the one the strategy expects and nothing else: a train reply carries
  exactly one ArrayRecord, under the inner strategy's key, and one MetricRecord; an evaluate
  reply one MetricRecord and no ArrayRecord; neither carries ConfigRecords besides the
  signature;
- arrays are judged against the **global model** (never by a vote among replies): the same
  names in the same order; each array's declared stype, dtype and shape equal the model's;
  its bytes parse as a ``.npy`` header that agrees with the declaration (no object dtype, no
  pickle, no zip) followed by exactly ``product(shape) x itemsize`` bytes; every value finite.
  A float64 update to a float32 model is a ``structure-mismatch``, so it can never turn the
  global model float64;
- metrics are finite numbers (int or float, not bool; or lists of them), and the weighting key
  (``num-examples``) a positive int no larger than ``max_num_examples``. Where the app declares
  its metric keys (``IntakeSettings.train_metrics`` / ``evaluate_metrics``), a reply must carry
  exactly those, as numbers (no lists); where it does not, the inner strategy gets, from each
  surviving reply, the metrics every surviving reply has in the same form
  (:func:`common_metrics`), so a deviant layout can neither raise in FedAvg nor cost an honest
  node its place.

Decoding writes each update straight into its row of the round's delta matrix (update minus
the global model, float32), which later stages read without decoding again.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from logging import WARNING
from typing import Any

import numpy as np
from flwr.app import Array, Message, MetricRecord
from flwr.common.logger import log
from numpy.lib import format as npy_format

from flwr_stellar.protocol.digest import SIGNATURE_RECORD, array_record_hash
from flwr_stellar.reasons import Reason, Rejected
from strategies.round import Candidate, ModelReference, RoundState

__all__ = ["DEFAULT_MAX_EXAMPLES", "Intake", "IntakeSettings", "common_metrics", "decode_array"]

DEFAULT_MAX_EXAMPLES = 1_000_000  # a bound on claims when the app gives none
NUMPY_STYPE = "numpy.ndarray"
MAX_METRIC_LIST = 10_000  # values in one list metric
MAX_HEADER_BYTES = 4096  # an honest .npy header is ~128 bytes
HASH_THREADS = max(1, min(4, os.cpu_count() or 1))  # hashing beside decoding
METRIC_RECORD = "metrics"  # the name every surviving reply's MetricRecord goes on under
# the wrappers' own counters in a round's metrics: a node sending them could fake the counts
RESERVED_METRIC_PREFIXES = ("replies_", "rejected_", "dlc_paid", "privacy_epsilon")


@dataclass(frozen=True)
class IntakeSettings:
    """What intake accepts, beyond the global model's own structure.

    Parameters
    ----------
    array_key : str (default: "arrays")
        The ArrayRecord name the inner strategy reads (``FedAvg.arrayrecord_key``).
    weight_key : str (default: "num-examples")
        The metric the inner strategy weighs replies by (``FedAvg.weighted_by_key``).
    max_num_examples : int (default: 1,000,000)
        Train claims above this are implausible.
    max_evaluate_examples : int (default: 1,000,000)
        Evaluate claims above this are implausible (a node's validation split is not its
        training sample).
    train_metrics : tuple of str, optional
        The exact metric keys the app's ClientApp sends with a train reply (the weight key
        included), each a number. None (the default) accepts any finite metrics and hands the
        inner strategy the ones every surviving reply shares.
    evaluate_metrics : tuple of str, optional
        The same for evaluate replies.
    """

    array_key: str = "arrays"
    weight_key: str = "num-examples"
    max_num_examples: int = DEFAULT_MAX_EXAMPLES
    max_evaluate_examples: int = DEFAULT_MAX_EXAMPLES
    train_metrics: tuple[str, ...] | None = None
    evaluate_metrics: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.array_key:
            raise ValueError("IntakeSettings.array_key must not be empty")
        if not self.weight_key:
            raise ValueError("IntakeSettings.weight_key must not be empty")
        for name in ("max_num_examples", "max_evaluate_examples"):
            if getattr(self, name) < 1:
                raise ValueError(f"IntakeSettings.{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("train_metrics", "evaluate_metrics"):
            keys = getattr(self, name)
            if keys is not None and self.weight_key not in keys:
                raise ValueError(
                    f"IntakeSettings.{name} must include the weight key {self.weight_key!r}, "
                    f"got {keys!r}"
                )

    @classmethod
    def for_strategy(cls, inner: object, **overrides: Any) -> IntakeSettings:
        """Settings that read the record key and weight key a Flower strategy uses.

        Parameters
        ----------
        inner : Strategy
            A Flower strategy; ``arrayrecord_key`` and ``weighted_by_key`` are read when it
            has them (FedAvg and its descendants do).
        **overrides
            Any other field.
        """
        keys: dict[str, Any] = {}
        pairs = (("array_key", "arrayrecord_key"), ("weight_key", "weighted_by_key"))
        for field_name, attribute in pairs:
            value = getattr(inner, attribute, None)
            if isinstance(value, str) and value:
                keys[field_name] = value
        return cls(**(keys | overrides))


class DecodeError(ValueError):
    """An array that does not decode to what the global model says it must be."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def decode_array(array: object, dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.ndarray:
    """The values of one received array, read without trusting anything it declares.

    Parameters
    ----------
    array : Array
        As received.
    dtype, shape
        What the global model has under the same name.

    Raises
    ------
    DecodeError
        ``structure-mismatch`` when the declaration differs from the model,
        ``malformed-array`` when the bytes do not back the declaration.
    """
    if not isinstance(array, Array):
        raise DecodeError(Reason.STRUCTURE, f"not an Array but {type(array).__name__}")
    raw_shape = array.shape if isinstance(array.shape, list | tuple) else ()
    declared_shape = tuple(raw_shape) if all(type(d) is int for d in raw_shape) else None
    if array.stype != NUMPY_STYPE:
        raise DecodeError(Reason.STRUCTURE, f"stype {str(array.stype)[:40]!r} != {NUMPY_STYPE!r}")
    if array.dtype != str(dtype) or declared_shape != shape:
        raise DecodeError(
            Reason.STRUCTURE,
            f"declared {str(array.dtype)[:20]}{list(raw_shape)[:8]} != "
            f"the model's {dtype}{list(shape)}",
        )
    data = array.data
    if not isinstance(data, bytes):
        raise DecodeError(Reason.MALFORMED_ARRAY, "array data is not bytes")
    header_end, fortran = _header(data, dtype, shape)
    count = math.prod(shape)
    expected = count * dtype.itemsize
    payload = len(data) - header_end
    if payload != expected:
        raise DecodeError(
            Reason.MALFORMED_ARRAY, f"{payload} data bytes, {expected} needed for {list(shape)}"
        )
    values = np.frombuffer(data, dtype=dtype, count=count, offset=header_end)
    return values.reshape(shape, order="F" if fortran else "C")


def _canonical_header(
    dtype: np.dtype[Any], shape: tuple[int, ...], fortran: bool, version: tuple[int, int]
) -> bytes:
    buffer = io.BytesIO()
    header = {"descr": npy_format.dtype_to_descr(dtype), "fortran_order": fortran, "shape": shape}
    if version == (1, 0):
        npy_format.write_array_header_1_0(buffer, header)
    else:
        npy_format.write_array_header_2_0(buffer, header)
    return buffer.getvalue()


def _header(data: bytes, dtype: np.dtype[Any], shape: tuple[int, ...]) -> tuple[int, bool]:
    """Where the values start, and their order, if ``data`` opens with exactly the header
    ``np.save`` writes for the model's dtype and shape.

    Nothing else is accepted, so Flower's own ``np.load`` in the inner strategy reads exactly
    what intake read: no header numpy parses differently across versions, no comments, no
    oversized or version-3 headers. The length field is read before anything is parsed, so a
    header that claims gigabytes costs nothing.
    """
    if len(data) < 10 or data[:6] != b"\x93NUMPY":
        raise DecodeError(Reason.MALFORMED_ARRAY, "not a .npy array (no magic string)")
    version = (data[6], data[7])
    if version == (1, 0):
        start, length = 10, int.from_bytes(data[8:10], "little")
    elif version == (2, 0) and len(data) >= 12:
        start, length = 12, int.from_bytes(data[8:12], "little")
    else:
        raise DecodeError(Reason.MALFORMED_ARRAY, f".npy version {version[0]}.{version[1]}")
    end = start + length
    if length > MAX_HEADER_BYTES or end > len(data):
        raise DecodeError(Reason.MALFORMED_ARRAY, f".npy header of {length} bytes")
    received = data[:end]
    for fortran in (False, True):
        if received == _canonical_header(dtype, shape, fortran, version):
            return end, fortran
    detail = f"the .npy header is not the one np.save writes for {dtype}{list(shape)}"
    try:  # for the reason: does it describe another array, or nothing readable at all?
        stream = io.BytesIO(received)
        npy_format.read_magic(stream)
        reader = (
            npy_format.read_array_header_1_0
            if version == (1, 0)
            else npy_format.read_array_header_2_0
        )
        got_shape, _, got_dtype = reader(stream, max_header_size=MAX_HEADER_BYTES)
    except Exception:
        raise DecodeError(Reason.MALFORMED_ARRAY, detail) from None
    if got_dtype != dtype or tuple(got_shape) != shape:
        raise DecodeError(
            Reason.STRUCTURE,
            f"bytes hold {got_dtype}{list(got_shape)[:8]}, the model (and the declaration) "
            f"{dtype}{list(shape)}",
        )
    raise DecodeError(Reason.MALFORMED_ARRAY, detail)


def _metric_problem(key: str, value: object) -> tuple[Reason, str] | None:
    """Why one metric value cannot go to an aggregator (None: it can)."""
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and len(value) > MAX_METRIC_LIST:
        return Reason.MALFORMED_METRICS, f"metric {key[:40]!r} is a list of {len(value)} values"
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float):
            return Reason.MALFORMED_METRICS, (
                f"metric {key[:40]!r} holds a {type(item).__name__}, not a number"
            )
        if isinstance(item, float) and not math.isfinite(item):
            return Reason.NON_FINITE, f"metric {key[:40]!r} is not finite"
        if isinstance(item, int) and abs(item) >= 2**53:
            return Reason.MALFORMED_METRICS, f"metric {key[:40]!r} is too large an integer"
    return None


def _shape_of(value: object) -> tuple[str, int]:
    return ("list", len(value)) if isinstance(value, list) else ("scalar", 0)


def common_metrics(replies: Iterable[Message]) -> list[Message]:
    """The replies, each with only the metrics every one of them carries in the same form,
    under one record name.

    Flower's aggregators raise unless every reply's MetricRecord has the same name and keys,
    and mix lists and scalars badly; without a declared layout there is no reference to reject
    a deviant reply by, so instead the inner strategy sees the keys all of them agree on (a
    node that leaves one out only takes that metric out of the round's aggregate; logged).
    The signatures were verified before this, on the records as received.
    """
    replies = list(replies)
    if not replies:
        return replies
    records = [next(iter(r.content.metric_records.values())) for r in replies]
    shapes = {k: _shape_of(v) for k, v in records[0].items()}
    for record in records[1:]:
        shapes = {k: s for k, s in shapes.items() if k in record and _shape_of(record[k]) == s}
    dropped = sorted({k[:40] for record in records for k in record} - set(shapes))
    if dropped:
        log(WARNING, "metrics not every accepted reply carries alike, left out: %s", dropped[:8])
    for reply, record in zip(replies, records, strict=True):
        name = next(iter(reply.content.metric_records))
        if name != METRIC_RECORD or set(record.keys()) != set(shapes):
            del reply.content[name]
            reply.content[METRIC_RECORD] = MetricRecord({k: record[k] for k in shapes})
    return replies


class Intake:
    """The first stage: replies -> candidates (decoded, checked) and rejections.

    Parameters
    ----------
    settings : IntakeSettings
        Record keys, the claim bound and, optionally, the exact metric keys.
    """

    def __init__(self, settings: IntakeSettings) -> None:
        self.settings = settings

    def __call__(self, state: RoundState) -> RoundState:
        model = state.model
        signers = state.signers or ("",) * len(state.replies)
        if model is None:
            unexpected = tuple(
                Rejected(_node(r), Reason.UNEXPECTED_REPLY, "no instruction was sent", p)
                for r, p in zip(state.replies, signers, strict=True)
            )
            return replace(state, candidates=(), rejected=state.rejected + unexpected)
        deltas = norms = None
        if state.is_train:
            deltas = np.empty((len(state.replies), model.size), np.float32)
            norms = np.zeros(len(state.replies), np.float64)
        candidates: list[tuple[Candidate, Future[str] | None]] = []
        rejected = list(state.rejected)
        # each accepted update is hashed (for the manifest) in a worker thread while the next
        # one decodes: hashlib and numpy both release the GIL on large buffers
        with ThreadPoolExecutor(max_workers=HASH_THREADS) as pool:
            for row, (reply, pseudonym) in enumerate(zip(state.replies, signers, strict=True)):
                node = _node(reply)
                try:
                    candidate = self._decode(reply, node, row, model, deltas, norms)
                except DecodeError as err:
                    rejected.append(Rejected(node, err.reason, err.detail, pseudonym))
                    continue
                update = reply.content.array_records.get(self.settings.array_key)
                digest = pool.submit(array_record_hash, update) if update is not None else None
                candidates.append((replace(candidate, pseudonym=pseudonym), digest))
            hashed = tuple(
                c if digest is None else replace(c, update_hash=digest.result())
                for c, digest in candidates
            )
        return replace(
            state,
            candidates=hashed,
            rejected=tuple(rejected),
            deltas=deltas,
            norms=norms,
            replies=(),
            signers=(),
        )

    def _decode(
        self,
        reply: Message,
        node: int,
        row: int,
        model: ModelReference,
        deltas: np.ndarray | None,
        norms: np.ndarray | None,
    ) -> Candidate:
        s = self.settings
        if reply.has_error():
            code = reply.error.code if isinstance(reply.error.code, int) else "?"
            raise DecodeError(Reason.ERROR_REPLY, f"node replied with error {code}")
        content = reply.content
        arrays, metrics = content.array_records, content.metric_records
        configs = [k[:40] for k in content.config_records if k != SIGNATURE_RECORD]
        want_arrays = 1 if deltas is not None else 0
        if len(arrays) != want_arrays or len(metrics) != 1 or configs:
            raise DecodeError(
                Reason.MALFORMED,
                f"{len(arrays)} ArrayRecord(s), {len(metrics)} MetricRecord(s), extra "
                f"ConfigRecord(s) {configs[:4]}; expected {want_arrays} + 1, no extras",
            )
        record = next(iter(metrics.values()))
        train = deltas is not None
        declared = s.train_metrics if train else s.evaluate_metrics
        bound = s.max_num_examples if train else s.max_evaluate_examples
        num_examples = self._metrics(record, declared, bound)
        if deltas is None or norms is None:
            return Candidate(node, reply, record, num_examples)
        if s.array_key not in arrays:
            raise DecodeError(
                Reason.MALFORMED,
                f"ArrayRecord named {next(iter(arrays))[:40]!r}, expected {s.array_key!r}",
            )
        update = arrays[s.array_key]
        if tuple(update.keys()) != model.keys:
            raise DecodeError(Reason.STRUCTURE, "array names differ from the global model's")
        target = deltas[row]
        squares = 0.0
        for key, dtype, shape, offset in zip(
            model.keys, model.dtypes, model.shapes, model.offsets, strict=True
        ):
            values = decode_array(update[key], dtype, shape)
            end = offset + values.size
            # update minus the global model, straight into the row (one pass, no temporary),
            # and its squared length while the segment is still in cache
            segment = np.subtract(values.ravel(), model.base[offset:end], out=target[offset:end])
            squares += float(np.dot(segment, segment))
        norm = math.sqrt(squares) if squares >= 0 else math.nan  # NaN or inf if any value is
        if not math.isfinite(norm):
            bad = int((~np.isfinite(target)).sum())
            raise DecodeError(
                Reason.NON_FINITE,
                f"{bad} NaN/inf values" if bad else "the update's norm overflows float32",
            )
        norms[row] = norm
        return Candidate(node, reply, record, num_examples, row)

    def _metrics(self, record: MetricRecord, declared: tuple[str, ...] | None, bound: int) -> int:
        s = self.settings
        for key, value in record.items():
            problem = _metric_problem(key, value)
            if problem is not None:
                raise DecodeError(*problem)
            if key.startswith(RESERVED_METRIC_PREFIXES):
                raise DecodeError(
                    Reason.MALFORMED_METRICS,
                    f"metric {key[:40]!r} is the server's own counter, not a node's to send",
                )
        if declared is not None:
            if set(record.keys()) != set(declared):
                missing = sorted(set(declared) - set(record.keys()))
                extra = sorted(k[:40] for k in set(record.keys()) - set(declared))
                raise DecodeError(
                    Reason.MALFORMED_METRICS,
                    f"metric keys: missing {missing}, unexpected {extra[:4]}",
                )
            lists = [k for k, v in record.items() if isinstance(v, list)]
            if lists:
                raise DecodeError(
                    Reason.MALFORMED_METRICS, f"metric {lists[0][:40]!r} is a list, not a number"
                )
        n = record.get(s.weight_key)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= bound:
            shown = repr(n)[:40]
            raise DecodeError(
                Reason.NUM_EXAMPLES, f"{s.weight_key}={shown}, expected an integer in [1, {bound}]"
            )
        return int(n)


def _node(reply: Message) -> int:
    node = reply.metadata.src_node_id
    return int(node) if isinstance(node, int) else -1
