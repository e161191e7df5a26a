"""Compatibility path for :mod:`theorylab.exact.compressed` (compressed PSGD, EF-SGD, EF21).

The exact predictions live in the engine package :mod:`theorylab.exact`; this module re-exports
the compressed families under their old import path.

Example
-------
>>> m = compressor_moments("rand-k:k=2", 4)
>>> m.alpha, m.kappa
(1.0, 1.0)
"""

from theorylab.exact.compressed import (  # noqa: F401  (private names: tests)
    CompressorMoments,
    _CoordinateSystem,
    _dense,
    _DenseSystem,
    _diagonal,
    _divided_power,
    _ef21_initial,
    _ef21_system,
    _ef_sgd_system,
    _psgd_system,
    _run_coordinate_system,
    _stein_forms,
    compressor_moments,
    exact_compressed_psgd,
    exact_ef21,
    exact_ef_sgd,
)

__all__ = [
    "CompressorMoments",
    "compressor_moments",
    "exact_compressed_psgd",
    "exact_ef_sgd",
    "exact_ef21",
]
