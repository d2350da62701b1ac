"""A model as one flat float32 vector and back: screening and scoring do their arithmetic on
flat vectors (one matrix row per update); an app's validation callback takes an ArrayRecord."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from flwr.app import Array, ArrayRecord

__all__ = ["flat_utility", "flatten", "unflatten"]


def unflatten(template: ArrayRecord, flat_params: np.ndarray) -> ArrayRecord:
    """An ArrayRecord shaped like ``template`` holding ``flat_params`` (views, no copies where
    the dtypes agree): what an app's validation callback receives."""
    arrays: dict[str, Array] = {}
    offset = 0
    for key, array in template.items():
        like = array.numpy()
        size = like.size
        arrays[key] = Array(
            flat_params[offset : offset + size].reshape(like.shape).astype(like.dtype, copy=False)
        )
        offset += size
    if offset != flat_params.size:
        raise ValueError(f"{flat_params.size} parameters for a model of {offset}")
    return ArrayRecord(arrays)


def flat_utility(
    validation: Callable[[ArrayRecord], float], template: ArrayRecord
) -> Callable[[np.ndarray], float]:
    """An app's validation callback (ArrayRecord -> float) as a function of flat parameters
    shaped like ``template``: what the validation check and the coalition scorers evaluate."""

    def utility(flat: np.ndarray) -> float:
        return float(validation(unflatten(template, flat)))

    return utility


def flatten(
    record: ArrayRecord, keys: Iterable[str] | None = None, dtype: type = np.float32
) -> np.ndarray:
    """The arrays of ``record`` (in ``keys`` order, default its own) as one flat vector."""
    parts: list[np.ndarray] = [
        record[k].numpy().ravel().astype(dtype, copy=False) for k in (keys or record.keys())
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype)
