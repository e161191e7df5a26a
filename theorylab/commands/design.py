"""``theorylab design``: the best topology and weights for a budget, or edges to add to a graph."""

from __future__ import annotations

from theorylab.output import emit, format_table

HELP = (
    "recommend a topology and weights under a budget (max degree, edges, or seconds per round "
    "in an alpha-beta model), or greedily add edges to a graph (--edgelist FILE --add-edges K)"
)

_COLUMNS = ["name", "degree", "edges", "period", "rule", "rho", "rho_eff", "rounds", "round_s",
            "consensus_s"]  # fmt: skip
_DSGD_COLUMNS = ["iterations", "gamma", "time_s"]


def add_arguments(parser) -> None:
    parser.add_argument("--n", type=int, default=None, help="number of nodes")
    budget = parser.add_argument_group("budget (one or more)")
    budget.add_argument("--max-degree", type=int, default=None, help="messages per node per round")
    budget.add_argument("--edges", type=int, default=None, help="undirected edges")
    budget.add_argument("--cost-budget", type=float, default=None, help="seconds per round")
    cost = parser.add_argument_group("alpha-beta model (theorylab.cost)")
    cost.add_argument("--alpha", type=float, default=5e-5, help="latency per message, s")
    cost.add_argument("--beta", type=float, default=1e-9, help="inverse bandwidth, s/byte")
    cost.add_argument("--bytes", type=int, default=4_000_000, help="bytes per message")
    cost.add_argument("--compute", type=float, default=0.0, help="compute seconds per round")
    cost.add_argument("--sends", choices=("sequential", "parallel"), default="sequential")
    cost.add_argument(
        "--calibrate", action="store_true",
        help="measure alpha and beta by ping-pong between 2 gloo ranks on this machine "
        "(the calibrator the verify package registers) and use them instead of --alpha/--beta",
    )  # fmt: skip
    dsgd = parser.add_argument_group("rank by predicted DSGD time to --target (theorylab.rates)")
    dsgd.add_argument("--target", type=float, default=None, help="target mean squared error")
    dsgd.add_argument("--L", type=float, default=1.0)
    dsgd.add_argument("--mu", type=float, default=0.1)
    dsgd.add_argument("--sigma2", type=float, default=1.0)
    dsgd.add_argument("--zeta2", type=float, default=1.0)
    dsgd.add_argument("--error0", type=float, default=1.0, help="||xbar_0 - x*||^2")
    parser.add_argument("--eps", type=float, default=1e-6, help="consensus accuracy (1e-6)")
    parser.add_argument("--sdp-max-n", type=int, default=64, help="largest n for SDP weights")
    parser.add_argument("--solver", default="barrier", help="SDP solver (barrier, SCS, CLARABEL)")
    greedy = parser.add_argument_group("greedy edge addition")
    greedy.add_argument("--edgelist", default=None, help="graph to improve ('u v' per line)")
    greedy.add_argument("--add-edges", type=int, default=None, help="edges to add")
    greedy.add_argument("--rule", default="metropolis", help="weight rule, or 'optimal'")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _greedy(args) -> int:
    from theorylab.errors import TheorylabError
    from theorylab.topology import from_edgelist
    from theorylab.topology_design import greedy_edge_addition

    if args.edgelist is None or args.add_edges is None:
        raise TheorylabError("greedy edge addition needs both --edgelist FILE and --add-edges K")
    G = from_edgelist(args.edgelist)
    steps = greedy_edge_addition(G, args.add_edges, rule=args.rule, solver=args.solver)
    table = (
        f"greedy edge addition on {args.edgelist} (n = {G.number_of_nodes()}, "
        f"m = {G.number_of_edges()}), weights {args.rule}; gain = increase of 1 - rho\n"
    )
    table += format_table(steps, ["step", "edge", "rho", "spectral_gap", "gain", "relative_gain"])
    emit({"graph": args.edgelist, "rule": args.rule, "steps": steps}, table, args.json)
    return 0


def run(args) -> int:
    from theorylab.cost import CommModel
    from theorylab.errors import TheorylabError
    from theorylab.topology_design import choose_topology

    if args.edgelist is not None or args.add_edges is not None:
        return _greedy(args)
    if args.n is None:
        raise TheorylabError("give --n N (and a budget), or --edgelist FILE --add-edges K")
    calibration = None
    if args.calibrate:
        from theorylab.commands import registry

        calibration = registry.calibrator()()  # verify's ping-pong, when verify is installed
        args.alpha, args.beta = calibration.alpha, calibration.beta
    model = CommModel(
        alpha=args.alpha, beta=args.beta, nbytes=args.bytes, compute_s=args.compute,
        sends=args.sends,
    )  # fmt: skip
    problem = None
    if args.target is not None:
        problem = dict(target=args.target, L=args.L, mu=args.mu, sigma2=args.sigma2,
                       zeta2=args.zeta2, avg_error0=args.error0)  # fmt: skip
    rows = choose_topology(
        args.n, max_degree=args.max_degree, edges=args.edges, cost_budget=args.cost_budget,
        model=model, problem=problem, eps=args.eps, sdp_max_n=args.sdp_max_n,
        solver=args.solver,
    )  # fmt: skip
    best = rows[0]
    ranked_by = "predicted DSGD time to target" if problem else f"consensus time to {args.eps:g}"
    table = ""
    if calibration is not None:
        table += (
            f"calibrated (2 gloo ranks, ping-pong): alpha = {calibration.alpha:.3g} s, "
            f"beta = {calibration.beta:.3g} s/B, R^2 = {calibration.r2:.3f}\n"
        )
    table += (
        f"recommended: {best['name']} with {best['rule']} weights (ranked by {ranked_by}; "
        f"alpha-beta model, {args.sends} sends)\n"
    )
    table += format_table(rows, _COLUMNS + (_DSGD_COLUMNS if problem else []))
    result = {
        "n": args.n, "budget": {"max_degree": args.max_degree, "edges": args.edges,
                                "cost_budget": args.cost_budget},
        "model": model.to_dict(), "problem": problem, "recommended": best, "candidates": rows,
    }  # fmt: skip
    if calibration is not None:
        result["calibration"] = calibration.to_dict()
    emit(result, table, args.json)
    return 0
