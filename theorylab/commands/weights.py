"""``theorylab weights``: rho of a graph under every weight rule, including the SDP optima."""

from __future__ import annotations

from theorylab.output import emit, format_table

HELP = (
    "rho = ||W - 11^T/n||_2 of a graph under max-degree, Metropolis, best-constant and the "
    "optimal symmetric (FDLA) and nonnegative (FMMC) weights; save the optimal W"
)

_COLUMNS = ["rule", "rho", "spectral_gap", "iterations", "speedup", "nonneg", "time_s"]


def add_arguments(parser) -> None:
    parser.add_argument(
        "family", nargs="?", default=None,
        help="topology family (theorylab topology lists them); omit with --edgelist",
    )  # fmt: skip
    parser.add_argument("--n", type=int, default=None, help="number of nodes")
    parser.add_argument("--edgelist", default=None, help="file with one 'u v' edge per line")
    parser.add_argument("--degree", type=int, default=None, help="degree (random-regular)")
    parser.add_argument("--p", type=float, default=None, help="edge probability (erdos-renyi)")
    parser.add_argument(
        "--radius", type=float, default=None,
        help="radius (random-geometric; default sqrt(2 ln n / (pi n)))",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of random families")
    parser.add_argument(
        "--solver", default="barrier",
        help="SDP solver: barrier (default, built in), SCS or CLARABEL (via cvxpy)",
    )  # fmt: skip
    parser.add_argument("--eps", type=float, default=1e-6, help="consensus accuracy (1e-6)")
    parser.add_argument("--no-sdp", action="store_true", help="skip the SDP optima")
    parser.add_argument("--save", default=None, help="save the FDLA-optimal W to this .npy file")
    parser.add_argument(
        "--save-nonnegative", default=None, help="save the FMMC-optimal W to this .npy file"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _graph(args):
    from theorylab import topology
    from theorylab.errors import TheorylabError

    if args.edgelist is not None:
        if args.family is not None:
            raise TheorylabError("give a FAMILY or --edgelist FILE, not both")
        return topology.from_edgelist(args.edgelist), f"edge list {args.edgelist}"
    if args.family is None:
        raise TheorylabError("give a topology FAMILY (e.g. ring) or --edgelist FILE")
    if args.family == "one-peer-exponential":
        raise TheorylabError(
            "one-peer-exponential is a time-varying schedule with fixed weights 1/2; "
            "weights optimises static graphs (try exponential)"
        )
    G = topology.build(
        args.family, args.n, degree=args.degree, p=args.p, radius=args.radius, seed=args.seed
    )
    return G, f"{args.family} (n = {G.number_of_nodes()})"


def _npy_path(path: str) -> str:
    """The file ``numpy.save`` writes for ``path`` (it appends ``.npy`` when missing)."""
    return path if path.endswith(".npy") else path + ".npy"


def run(args) -> int:
    import numpy as np

    from theorylab.design import compare_weight_rules, fmmc_weights, optimal_weights

    G, what = _graph(args)
    rows = compare_weight_rules(G, eps=args.eps, sdp=not args.no_sdp, solver=args.solver)
    saved = {}
    if args.save:
        saved["fdla"] = _npy_path(args.save)
        np.save(saved["fdla"], optimal_weights(G, solver=args.solver).W)
    if args.save_nonnegative:
        saved["fmmc"] = _npy_path(args.save_nonnegative)
        np.save(saved["fmmc"], fmmc_weights(G, solver=args.solver).W)
    header = (
        f"{what}: m = {G.number_of_edges()} edges; rho = ||W - 11^T/n||_2, gap = 1 - rho, "
        f"iterations = gossip rounds to shrink the consensus error by {args.eps:g}\n"
    )
    table = header + format_table(rows, _COLUMNS)
    for kind, path in saved.items():
        table += f"\nsaved the {kind.upper()}-optimal W to {path}"
    result = {
        "graph": what, "n": G.number_of_nodes(), "m": G.number_of_edges(), "eps": args.eps,
        "solver": args.solver, "rules": rows, "saved": saved,
    }  # fmt: skip
    emit(result, table, args.json)
    return 0
