"""What the main job costs: ``python -m verify`` (quick budget) end to end, and its parts.

Issue 13, section 4: the quick run must stay <= 60 s and <= 2 GiB on 2 cores. This script runs
``python -m verify --force --quiet --results TMP`` (plus any extra arguments) in a subprocess and
reports:

- wall time; CPU time (user + system) of the whole process tree: the verify process, its lane,
  the fork server and the ranks forked from it, the figure process (each process's
  ``/proc/PID/stat`` sampled every 0.2 s, or ``RUSAGE_CHILDREN`` if larger);
- peak memory summed over the process tree, sampled every 0.2 s from ``/proc``: ``VmRSS``
  (``/proc/PID/status``; shared pages counted once per process) and PSS
  (``/proc/PID/smaps_rollup``; shared pages split between processes, the honest total);
- per-claim wall times from the saved JSON results (``wall_s``), slowest first;
- what costs what, each measured in its own subprocess: the interpreter + the CLI's imports
  (``import verify.cli, verify.claims, verify.report``), the worker-pool start
  (``WorkerPool(world_size)`` to ready, imports excluded), and the figures (every saved result
  redrawn with :func:`verify.report.save_figure`, the matplotlib import counted apart);
  the remainder (``total - imports - pool start - claims``, and ``- figures`` with
  ``--inline-figures``) is the pool shutdown, the wait for the last figures, the table and the
  interpreter exit.

On a shared machine read CPU times and the split, not the wall time alone.

Figures are drawn in a background process while the claims run (:mod:`verify.drawing`);
``--inline-figures`` draws them in the main process, as before, for comparison.

Usage: ``python benchmarks/main_job.py [--keep DIR] [--inline-figures] [-- VERIFY ARGS]``, e.g.
``python benchmarks/main_job.py -- --claims gossip_decay``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GIB = 1024**3
ROOT = Path(__file__).resolve().parent.parent


def _children_of() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _tree(pid: int) -> list[int]:
    kids, out, todo = _children_of(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _kib(path: str, field: str) -> int:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_s(pid: int) -> tuple[float, float] | None:
    """(user s, system s) a process has used so far, from ``/proc/PID/stat``."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK  # utime, stime (fields 14, 15)


def _name(pid: int) -> str:
    """A short label for a process: its command line's last two words."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            words = fh.read().split(b"\0")
    except OSError:
        return "?"
    words = [w.decode(errors="replace") for w in words if w]
    return " ".join(w[-40:] for w in words[-2:])


#: pid -> label of every process seen in the tree
_LABELS: dict[int, str] = {}


def _sample(pid: int, cpu: dict, each: list | None = None) -> tuple[int, int, int]:
    """(RSS bytes, PSS bytes, process count) summed over ``pid``'s process tree; records each
    process's CPU so far in ``cpu`` (pid -> (user, system)): the ranks are forks of the fork
    server, not children the main job waits for, so ``RUSAGE_CHILDREN`` misses them. With
    ``each``, appends (pid, label, RSS KiB, PSS KiB) of every process to it."""
    procs = _tree(pid)
    rows = [
        (p, _kib(f"/proc/{p}/status", "VmRSS"), _kib(f"/proc/{p}/smaps_rollup", "Pss"))
        for p in procs
    ]
    rss = sum(r for _, r, _ in rows)
    pss = sum(q for _, _, q in rows)
    if each is not None:
        for p, r, q in rows:
            roll = f"/proc/{p}/smaps_rollup"
            uss = _kib(roll, "Private_Clean") + _kib(roll, "Private_Dirty")
            each.append((p, _name(p), r, q, uss, _kib(roll, "Anonymous")))
    for p in procs:
        used = _cpu_s(p)
        if used is not None:
            cpu[p] = used
            if p not in _LABELS:
                _LABELS[p] = _name(p)
    return rss * 1024, pss * 1024, len(procs)


def _timed(cmd: list[str], env: dict, cwd) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall s, CPU s of the child tree, completed process) of one subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc


def _python(code: str, env: dict) -> tuple[float, float, str]:
    wall, cpu, proc = _timed([sys.executable, "-c", code], env, ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"probe failed:\n{code}\n{proc.stderr[-2000:]}")
    return wall, cpu, proc.stdout


_POOL = """
import time
from verify.runtime.launch import WorkerPool
if __name__ == "__main__":
    t0 = time.perf_counter(); pool = WorkerPool({world}); t1 = time.perf_counter()
    pool.close(); t2 = time.perf_counter()
    print(t1 - t0, t2 - t1)
"""

_FIGURES = """
import json, sys, time
t0 = time.perf_counter(); t0c = time.process_time()
import matplotlib.figure, matplotlib.backends.backend_agg
t1 = time.perf_counter(); t1c = time.process_time()
from verify.report import load_results, save_figure
t2 = time.perf_counter(); t2c = time.process_time()
out = {{"matplotlib import": [t1 - t0, t1c - t0c], "verify.report import": [t2 - t1, t2c - t1c]}}
for r in load_results({results!r}):
    if r.verdict == "error":
        continue
    a, ac = time.perf_counter(), time.process_time()
    save_figure(r, {tmp!r} + "/" + r.claim + ".png")
    out["figure " + r.claim] = [time.perf_counter() - a, time.process_time() - ac]
print(json.dumps(out))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", metavar="DIR", help="results folder to use and keep")
    ap.add_argument("--world-size", type=int, default=4)
    ap.add_argument(
        "--inline-figures",
        action="store_true",
        help="draw figures in the main process (THEORYLAB_INLINE_FIGURES=1), the old way",
    )
    ap.add_argument("extra", nargs="*", help="extra arguments for `python -m verify` (after --)")
    args = ap.parse_args(argv)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if args.inline_figures:
        env["THEORYLAB_INLINE_FIGURES"] = "1"
    tmp = tempfile.mkdtemp(prefix="main_job_")
    results = args.keep or os.path.join(tmp, "results")
    cmd = [sys.executable, "-m", "verify", "--force", "--quiet", "--results", results]
    cmd += ["--world-size", str(args.world_size), *args.extra]

    # 1. the main job, sampled every 0.2 s
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak_rss = peak_pss = peak_procs = 0
    at_peak: list = []
    cpu: dict[int, tuple[float, float]] = {}
    while proc.poll() is None:
        each: list = []
        rss, pss, count = _sample(proc.pid, cpu, each)
        if rss > peak_rss:
            at_peak = each
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        peak_procs = max(peak_procs, count)
        time.sleep(0.2)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the larger of: what the job's waited-for children used (exact, misses the fork
    # server's ranks) and the per-process samples (misses each process's last < 0.2 s)
    user = max(after.ru_utime - before.ru_utime, sum(u for u, _ in cpu.values()))
    system = max(after.ru_stime - before.ru_stime, sum(s for _, s in cpu.values()))
    claims = []
    for path in sorted(Path(results).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        claims.append((float(data.get("wall_s") or 0.0), data.get("claim"), data.get("verdict")))
    claims.sort(reverse=True)

    # 2. the parts, each in its own subprocess
    imp_wall, imp_cpu, _ = _python("import verify.cli, verify.claims, verify.report", env)
    bare_wall, bare_cpu, _ = _python("pass", env)
    script = os.path.join(tmp, "pool_probe.py")
    Path(script).write_text(_POOL.format(world=args.world_size))
    pool_total_wall, pool_cpu, pool_out = _timed([sys.executable, script], env, tmp)
    start_s, close_s = (float(v) for v in pool_out.stdout.split())
    figs_dir = os.path.join(tmp, "figures")
    _, fig_cpu, fig_out = _python(_FIGURES.format(results=results, tmp=figs_dir), env)
    figures = json.loads(fig_out)

    # 3. the table
    print(f"command: {' '.join(cmd)}  (exit status {proc.returncode})")
    print(
        f"main job: wall {wall:.1f} s, CPU {user + system:.1f} s (user {user:.1f}, system "
        f"{system:.1f}); peak over the process tree ({peak_procs} processes): "
        f"RSS {peak_rss / GIB:.2f} GiB, PSS {peak_pss / GIB:.2f} GiB"
    )
    print(f"targets: wall <= 60 s: {'met' if wall <= 60 else 'NOT met'}; "
          f"PSS <= 2 GiB: {'met' if peak_pss <= 2 * GIB else 'NOT met'}; "
          f"RSS <= 2 GiB: {'met' if peak_rss <= 2 * GIB else 'NOT met'}")  # fmt: skip
    print("at the RSS peak (MiB; USS: the process's private pages; anonymous: heap, incl. pages")
    print("shared copy-on-write with the fork server):")
    print(f"  {'pid':>7}  {'process':<44} {'RSS':>6} {'PSS':>6} {'USS':>6} {'anon':>6}")
    for p, label, r, q, u, a in sorted(at_peak, key=lambda row: -row[2]):
        print(f"  {p:>7}  {label[-44:]:<44} {r / 1024:6.0f} {q / 1024:6.0f} {u / 1024:6.0f} "
              f"{a / 1024:6.0f}")  # fmt: skip
    print("CPU by process (user + system s):")
    for p, (u, sy) in sorted(cpu.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {p:>7}  {_LABELS.get(p, '?')[-44:]:<44} {u + sy:6.1f}")
    print("\nwhat costs what (wall s / CPU s, each part measured in its own subprocess):")
    rows = [
        ("interpreter start (python -c pass)", bare_wall, bare_cpu),
        ("interpreter + CLI imports", imp_wall, imp_cpu),
        (f"worker pool start ({args.world_size} ranks, to ready)", start_s, None),
        ("worker pool close", close_s, None),
        ("worker pool probe, whole process", pool_total_wall, pool_cpu),
    ]
    mpl = figures.pop("matplotlib import")
    rep = figures.pop("verify.report import")
    fig_sum = sum(v[0] for v in figures.values())
    fig_cpu_sum = sum(v[1] for v in figures.values())
    rows += [
        ("matplotlib import (figures)", mpl[0], mpl[1]),
        (f"figures ({len(figures)} PNGs, drawing only)", fig_sum, fig_cpu_sum),
    ]
    claim_sum = sum(c[0] for c in claims)
    rows.append((f"claims ({len(claims)}, sum of wall_s)", claim_sum, None))
    # the two lanes (verify.lanes): the ranks' claims in the main process, the simulator-only
    # ones in the lane (or taken back by the main process at the end); the longer is the
    # critical path
    sys.path.insert(0, str(ROOT))  # the checkout's claims, as the job ran them
    import verify.claims  # noqa: F401  (registers every claim)
    from verify.claims.base import CLAIMS

    on_ranks = sum(w for w, name, _ in claims if getattr(CLAIMS.get(name), "ranks", True))
    rows.append(("  of which claims on the ranks (main lane)", on_ranks, None))
    rows.append(("  of which simulator-only claims (second lane)", claim_sum - on_ranks, None))
    extra = list(args.extra)
    lanes = 1 if "--lanes" in extra[:-1] and extra[extra.index("--lanes") + 1] == "1" else 2
    critical = max(on_ranks, claim_sum - on_ranks) if lanes == 2 else claim_sum
    # figures drawn in the background overlap the claims: not on the critical path
    fig_inline = fig_sum + mpl[0] if args.inline_figures else 0.0
    rest = wall - imp_wall - start_s - critical - fig_inline
    rows.append(("remainder (wall - imports - pool start - the longer lane)", rest, None))
    for name, w, c in rows:
        print(f"  {name:<48} {w:>7.2f} s {('' if c is None else f'{c:>7.2f} s CPU'):>14}")
    print(f"  (verify.report import in the figure probe: {rep[0]:.2f} s; figure probe CPU "
          f"{fig_cpu:.2f} s)")  # fmt: skip
    print("\nclaims, slowest first (wall s, verdict):")
    for w, name, verdict in claims:
        print(f"  {name:<40} {w:>7.2f} s  {verdict}")
    print("\nfigures, slowest first (wall s / CPU s):")
    for name, (w, c) in sorted(figures.items(), key=lambda kv: -kv[1][0])[:10]:
        print(f"  {name[7:]:<40} {w:>7.2f} s {c:>7.2f} s")
    if proc.returncode not in (0, 1):
        print("\nstderr of the main job (tail):\n" + err[-3000:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
