"""The registry of named compressors and the spec parser (``"name:key=value,..."``)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from theorylab.compressors.base import Compressor, Identity, Scaled
from theorylab.compressors.lowrank import PowerSGD
from theorylab.compressors.quantizers import QSGD, Cast, Natural, ScaledSign, Sign, TernGrad
from theorylab.compressors.sparsifiers import RandK, TopK
from theorylab.errors import TheorylabError

__all__ = ["COMPRESSORS", "get_compressor"]


def _parse_value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


# --------------------------------------------------------------------------------------------
# registry

#: name -> factory (keyword arguments = the compressor's parameters, all with defaults)
COMPRESSORS: dict[str, Callable[..., Compressor]] = {
    "identity": Identity,
    "fp16": lambda: Cast(torch.float16),
    "bf16": lambda: Cast(torch.bfloat16),
    "rand-k": lambda k=None, ratio=None: RandK(k=k, ratio=ratio, scaled=True),
    "rand-k-unscaled": lambda k=None, ratio=None: RandK(k=k, ratio=ratio, scaled=False),
    "top-k": TopK,
    "qsgd": QSGD,
    "natural": Natural,
    "sign": Sign,
    "scaled-sign": ScaledSign,
    "terngrad": TernGrad,
    "powersgd": PowerSGD,
    "scaled-qsgd": lambda s=7: Scaled(QSGD(s=s)),
}


def get_compressor(spec: str | Compressor) -> Compressor:
    """Build a compressor from a spec string: ``"name"`` or ``"name:key=value,key=value"``,
    or ``"scaled(<spec>)"`` for :class:`Scaled`. A :class:`Compressor` is returned as is.

    >>> get_compressor("rand-k:k=10").omega(100)
    9.0
    >>> get_compressor("scaled(qsgd:s=2)").delta(64)
    0.25

    Raises
    ------
    TheorylabError
        Unknown name, malformed parameter, or invalid parameter value.
    """
    if isinstance(spec, Compressor):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string or Compressor, got {type(spec).__name__}")
    text = spec.strip()
    if text.startswith("scaled(") and text.endswith(")"):
        return Scaled(get_compressor(text[len("scaled(") : -1]))
    name, _, rest = text.partition(":")
    if name not in COMPRESSORS:
        raise TheorylabError(
            f"unknown compressor {name!r}; choose one of {sorted(COMPRESSORS)} (or scaled(<spec>))"
        )
    kwargs = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise TheorylabError(f"malformed parameter {item!r} in {spec!r}; use key=value")
        kwargs[key.strip()] = _parse_value(value.strip())
    try:
        return COMPRESSORS[name](**kwargs)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise TheorylabError(f"bad parameter for {name!r} in {spec!r}: {exc}") from exc
        raise
