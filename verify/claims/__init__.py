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


def catalog() -> list[dict]:
    """One row per claim, grouped by the lecture question it answers (in first-seen order):
    ``question``, ``claim``, ``kind``, ``plain`` (one sentence), ``description`` and
    ``detectable`` (term -> minimum detectable relative error at 95 % power, quick / full)."""
    rows = [
        {
            "question": c.question or "(no question stated)",
            "claim": c.name,
            "kind": c.kind,
            "plain": c.plain or c.description,
            "description": c.description,
            "detectable": {k: list(v) for k, v in dict(c.detectable).items()},
            "wall_clock": bool(c.wall_clock),
        }
        for c in CLAIMS.values()
    ]
    order = {q: i for i, q in reversed(list(enumerate(r["question"] for r in rows)))}
    return sorted(rows, key=lambda r: order[r["question"]])


def format_catalog(rows: list[dict]) -> str:
    """The text of ``theorylab verify --list``: a heading per question, then each claim with its
    kind, its plain sentence and its minimum detectable error per term (quick / full)."""
    out, last = [], None
    for r in rows:
        if r["question"] != last:
            out.append(("" if last is None else "\n") + r["question"])
            last = r["question"]
        timing = ", wall-clock: runs with --wall-clock or when named" if r.get("wall_clock") else ""
        out.append(f"  {r['claim']} ({r['kind']}{timing}): {r['plain']}")
        for term, (quick, full) in r["detectable"].items():
            out.append(f"      detectable at 95% power, {term}: {quick} quick, {full} full")
    return "\n".join(out)


__all__ = [
    "BUDGETS",
    "CLAIMS",
    "IMPORT_ERRORS",
    "catalog",
    "format_catalog",
    "KINDS",
    "Claim",
    "ClaimContext",
    "ClaimResult",
    "register_claim",
]
