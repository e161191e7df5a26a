"""Algorithms, each the update rule of one node (see :mod:`verify.algorithms.base`).

Every module in this package is imported here so its ``@register`` runs and
:data:`ALGORITHMS` lists all algorithms.
"""

import importlib
import pkgutil

from verify.algorithms.base import ALGORITHMS, Algorithm, Context, register

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base":
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["ALGORITHMS", "Algorithm", "Context", "register"]
