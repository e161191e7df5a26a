"""``theorylab compressors``: every registered compressor with its class, constant and bits."""

from __future__ import annotations

from theorylab.output import emit, format_table

HELP = "list the compressors: class U(omega)/B(delta), the constant at d, exact bits on the wire"

_COLUMNS = [
    "compressor",
    "class",
    "omega",
    "delta",
    "tight",
    "bits",
    "header_bits",
    "bits_per_coord",
]


def add_arguments(parser) -> None:
    parser.add_argument("--d", type=int, required=True, help="dimension of the vector (>= 1)")
    parser.add_argument(
        "--spec",
        action="append",
        default=None,
        help="compressor spec to list instead of the registry (repeatable), e.g. qsgd:s=4",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def rows(d: int, specs=None) -> list[dict]:
    """One row per compressor (registry defaults, or ``specs``), float32 wire sizes."""
    from theorylab.compressors import COMPRESSORS, get_compressor
    from theorylab.errors import check_int

    d = check_int("d", d, minimum=1)
    out = []
    for spec in specs or list(COMPRESSORS):
        C = get_compressor(spec)
        try:
            out.append(C.describe(d))
        except ValueError as exc:  # e.g. k > d for an explicit k
            out.append({"compressor": C.spec, "class": C.kind, "error": str(exc)})
    if specs and all("error" in r for r in out):  # nothing listable: say why, exit 2
        from theorylab.errors import TheorylabError

        raise TheorylabError("; ".join(f"{r['compressor']}: {r['error']}" for r in out))
    return out


def run(args) -> int:
    result = rows(args.d, args.spec)
    columns = _COLUMNS + (["error"] if any("error" in r for r in result) else [])
    table = f"compressors at d = {args.d} (float32; bits include the per-row header)\n"
    table += format_table(result, columns)
    emit({"d": args.d, "compressors": result}, table, args.json)
    return 0
