"""``theorylab verify``: run the claims (theory vs measurement), print the table, save results.

This module is verify's plugin for the ``theorylab`` command: :func:`register` (named by the
``theorylab.commands`` entry point in pyproject.toml, or found by import from a checkout) adds
the ``verify`` subcommand, the ``figures`` subcommand (:mod:`verify.figures_cli`: redraw
every figure from a results folder) and the ping-pong alpha-beta calibrator that
``theorylab design --calibrate`` uses. theorylab never imports verify; verify plugs into it.

Examples
--------
``theorylab verify`` (quick budget, gloo on CPU, 4 workers), ``theorylab verify --list``,
``theorylab verify --claims gossip_decay --force``, ``theorylab verify --full --world-size 8``,
``theorylab verify --backend nccl --device cuda``. ``python -m verify`` is the same command.

Exit status: 0 when every selected claim passes, 1 when any fails or errors, 2 on bad arguments.
"""

from __future__ import annotations

import sys
import time

__all__ = ["HELP", "add_arguments", "run", "register", "calibrate_ping_pong", "main"]

HELP = "run the claims that check theory against real runs; print the table, save results"


def _seconds(text: str) -> float:
    """argparse type of ``--timeout``: a finite number of seconds > 0."""
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds > 0, got {text!r}")
    return value


def add_arguments(parser) -> None:
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--quick",
        dest="budget",
        action="store_const",
        const="quick",
        help="small sweeps, few replicas (default; about 2 minutes on 2 CPU cores)",
    )
    budget.add_argument(
        "--full",
        dest="budget",
        action="store_const",
        const="full",
        help="larger sweeps and more replicas (tighter intervals)",
    )
    parser.set_defaults(budget="quick")
    parser.add_argument("--claims", nargs="+", metavar="NAME", help="run only these claims")
    parser.add_argument("--list", action="store_true", help="list the claims and exit")
    parser.add_argument("--backend", choices=("gloo", "nccl"), default="gloo")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--world-size",
        type=int,
        default=4,
        metavar="N",
        help="processes of the distributed executor = nodes of distributed claims (default 4)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="base seed (default 0)")
    parser.add_argument(
        "--replicas",
        type=int,
        default=None,
        metavar="R",
        help="replicas per node (default: each claim's budget default)",
    )
    parser.add_argument(
        "--results",
        default="results",
        metavar="DIR",
        help="folder of the JSON results and figures/ (default ./results)",
    )
    parser.add_argument("--no-figures", action="store_true", help="do not write PNG figures")
    parser.add_argument(
        "--lanes",
        type=int,
        choices=(1, 2),
        default=None,
        help="2: the simulator-only claims run in a second process beside the ones that use the "
        "ranks (default on >= 2 cores, CPU, no wall-clock claim); 1: one after another "
        "(env THEORYLAB_LANES)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="re-run claims that already have a saved result for the same configuration",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="time limit of each claim: a claim whose worker processes are still busy after it "
        "(e.g. a frozen worker) becomes an error naming the stuck ranks; a simulated run stops "
        "at its next step (default: per claim, "
        "120 s quick / 3600 s full at world size <= 4, times world_size/4 above; starting the "
        "workers is not counted)",
    )
    parser.add_argument(
        "--torchrun",
        action="store_true",
        help="run the claims' distributed parts on the ranks of this torchrun job (automatic "
        "when started by torchrun): rank 0 runs the claims and writes the results, the other "
        "ranks serve; --world-size is the job's",
    )
    parser.add_argument(
        "--comm-timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="under torchrun: limit of every communication wait of the algorithms (default 60)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    parser.add_argument(
        "--wall-clock",
        action="store_true",
        help="also run the claims that measure wall-clock time (their verdict depends on the "
        "machine's load; they always run when named with --claims)",
    )


def register(registry) -> None:
    """Plug verify into the ``theorylab`` command (see :mod:`theorylab.commands`)."""
    registry.add_command("verify", __name__)
    registry.add_command("figures", "verify.figures_cli")
    registry.add_calibrator("gloo-ping-pong", calibrate_ping_pong)


def calibrate_ping_pong():
    """alpha and beta of this machine: ping-pong between 2 gloo ranks on CPU.

    Returns the :class:`verify.calibrate.Calibration` of
    :func:`verify.calibrate.measure_alpha_beta` (``world_size=2, backend='gloo', device='cpu'``).
    """
    from verify.calibrate import measure_alpha_beta

    return measure_alpha_beta(world_size=2, backend="gloo", device="cpu")


def _list(as_json: bool) -> int:
    from theorylab.output import emit
    from verify.claims import IMPORT_ERRORS, catalog, format_catalog

    rows = catalog()  # grouped by the lecture question each claim answers
    table = format_catalog(rows)
    for module, err in IMPORT_ERRORS.items():
        table += f"\n(module verify.claims.{module} not loaded: {err})"
    emit({"claims": rows, "import_errors": IMPORT_ERRORS}, table, as_json)
    return 0


def run(args) -> int:
    if args.list:
        return _list(args.json)

    from verify.report import select_claims

    # unknown names fail before any process starts (and before a torchrun rendezvous)
    claims = select_claims(args.claims, wall_clock=args.wall_clock)
    pool = None
    if getattr(args, "torchrun", False) or _under_torchrun():
        pool = _torchrun_pool(args)
        if pool is None:  # a serving rank: its work is done
            return 0
        args.world_size = pool.world_size
    try:
        return _run(args, claims, pool)
    finally:
        if pool is not None:
            import torch.distributed as dist

            pool.close()
            dist.destroy_process_group()


def _under_torchrun() -> bool:
    from verify.runtime.torchrun import under_torchrun

    return under_torchrun()


def _torchrun_pool(args):
    """Under torchrun: rank 0's :class:`~verify.runtime.torchrun.TorchrunPool`; the other ranks
    serve rank 0's tasks here until it stops them, and get ``None``."""
    import torch.distributed as dist

    from verify.runtime.torchrun import TorchrunPool, serve, start

    limit = args.timeout if args.timeout is not None else 3600.0
    rank, world_size, control = start(
        args.backend, args.device, timeout_s=args.comm_timeout,
        control_timeout_s=max(3600.0, 4 * limit),
    )  # fmt: skip
    if rank != 0:
        try:
            serve(control, rank, world_size)
        finally:
            dist.destroy_process_group()
        return None
    return TorchrunPool(control, rank, world_size)


def _run(args, claims, pool) -> int:
    from theorylab.output import emit
    from verify.claims import ClaimContext
    from verify.report import ProgressLine, format_results, run_claims

    progress = ProgressLine(len(claims), enabled=not args.quiet)
    t0 = time.perf_counter()
    with ClaimContext(
        args.budget,
        backend=args.backend,
        device=args.device,
        world_size=args.world_size,
        seed=args.seed,
        replicas=args.replicas,
        progress=progress.update,
        claim_timeout_s=args.timeout,
        pool=pool,
    ) as ctx:
        results = run_claims(
            args.claims or None,  # None: all claims, a module that failed to import is an error
            ctx,
            args.results,
            force=args.force,
            figures=not args.no_figures,
            progress=progress,
            wall_clock=args.wall_clock,
            lanes=args.lanes,
        )
    wall = time.perf_counter() - t0
    n_pass = sum(r.passed for r in results)
    summary = (
        f"{n_pass}/{len(results)} claims pass ({args.budget} budget, {args.backend} on "
        f"{args.device}, world size {args.world_size}) in {wall:.1f} s; results in {args.results}"
    )
    payload = {
        "summary": summary,
        "wall_s": wall,
        "results": [
            {k: v for k, v in r.to_dict().items() if k not in ("series", "traceback")}
            for r in results
        ],
    }
    emit(payload, format_results(results) + "\n\n" + summary, args.json)
    for r in results:
        if r.verdict == "error" and not args.json:
            print(f"\n{r.claim} raised:\n{r.traceback}", file=sys.stderr)
    return 0 if n_pass == len(results) else 1


def main(argv=None) -> int:
    """``python -m verify [ARGS]`` = ``theorylab verify [ARGS]``."""
    from theorylab.cli import main as theorylab_main

    argv = list(sys.argv[1:] if argv is None else argv)
    return theorylab_main(["verify", *argv])
