"""The claims ``theorylab verify`` checks: theory (:mod:`theorylab`) against measurement.

Every module in this package except ``base``, ``common``, ``stats`` is imported here, so a claim
module only has to exist (and decorate its classes with :func:`register_claim`) to appear in
:data:`CLAIMS`.
A module that fails to import (e.g. a dependency not written yet) is recorded in
:data:`IMPORT_ERRORS` instead of breaking the others; ``theorylab verify --list`` shows it.
"""

import importlib
import pkgutil

from verify.claims.base import (
    BUDGETS,
    CLAIMS,
    KINDS,
    Claim,
    ClaimContext,
    ClaimResult,
    register_claim,
)

#: module name -> the exception that stopped it from importing
IMPORT_ERRORS: dict[str, str] = {}

for _info in pkgutil.iter_modules(__path__):
    if _info.name in ("base", "common", "stats") or _info.name.startswith("_"):
        continue
    try:
        importlib.import_module(f"{__name__}.{_info.name}")
    except ImportError as _exc:
        IMPORT_ERRORS[_info.name] = f"{type(_exc).__name__}: {_exc}"

__all__ = [
    "BUDGETS",
    "CLAIMS",
    "IMPORT_ERRORS",
    "KINDS",
    "Claim",
    "ClaimContext",
    "ClaimResult",
    "register_claim",
]
