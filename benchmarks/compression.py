"""Compression benchmark: real bytes vs declared bits, and encode + decode throughput.

Part 1 (bytes): for every registered compressor and d = 10^3 ... 10^7 (``--quick``: up to 10^5),
``8 * len(encode(x)) / bits(d)`` (target <= 1.01: the only slack is rounding the payload up to a
whole byte) and the header's share of the bits.

Part 2 (throughput): encode + decode of one d-vector (``--quick``: d = 10^5; else 10^6), median
of repeats, against PyTorch's own DDP hooks on the same tensor in a world-size-1 gloo group (their
all-reduce is then a local no-op copy, so the time is their compression work):
``fp16_compress_hook`` and ``powerSGD_hook`` (rank 1, warm start, error feedback; the tensor given
as the same n x m matrix theorylab's PowerSGD uses). Ratios are ours / torch fp16 hook (and ours /
torch PowerSGD for powersgd), all timed in this run.

Part 3 (issue 13 section 1, one thread, d = 10^6): for every registered compressor,
encode + decode against the best plain torch/numpy code for the same message (numpy's RNG,
frexp, partition and Floyd sampler where they are faster; for QSGD and TernGrad the faster of
float uniforms and integer thresholds on raw random words, in each pair; ``vs_plain``: median
of interleaved paired ratios of thread CPU time, which other processes' load does not inflate;
target <= 1.5),
and against an uncompressed gloo all-reduce of the same vector between 2 processes timed in the
same run (``vs_allreduce``: medians; ``vs_allreduce_min``: min / min, the least disturbed runs;
target < 1 for every compressor sending <= 1/8 of the bytes, ``bytes_frac``, a header aside).

After it, a floor table: single library calls that bound a stochastic quantizer from below on
this machine (10^6 random 32-bit words, float uniforms, one read pass, one decode gather; and
the two costs of drawing only 8 random bits per coordinate: the words and the tie search).

Part 4 (the full compressed exchange, ``--world`` processes, default 4): per repeat an
uncompressed all-reduce, then for every compressor encode + all-gather of the bytes + the sum
of all messages' decodes (``decode_sum``: no dense tensor per message); paired ratios (target
< 1 where the bytes are <= 1/8).

Usage: ``python benchmarks/compression.py [--quick] [--no-allreduce] [--skip-bytes] [--world N]``
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from theorylab.compressors import COMPRESSORS, PowerSGD, get_compressor  # noqa: E402
from theorylab.output import format_table  # noqa: E402


class _Bucket:
    """The part of ``dist.GradBucket`` that torch's fp16 and PowerSGD hooks call."""

    def __init__(self, grad: torch.Tensor):
        self._grad = grad
        self._buffer = grad.reshape(-1)

    def buffer(self):
        return self._buffer

    def gradients(self):
        return [self._grad]

    def index(self):
        return 0

    def is_last(self):
        return True


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bytes_table(dims) -> list[dict]:
    rows = []
    for name in COMPRESSORS:
        C = get_compressor(name)
        row = {"compressor": C.spec}
        for d in dims:
            x = torch.randn(d, generator=torch.Generator().manual_seed(0))
            sent = C.encode(x, torch.Generator().manual_seed(1)).numel()
            row[f"d=1e{len(str(d)) - 1}"] = 8 * sent / C.bits(d)
        d = dims[-1]
        row["header_share"] = 8 * C.header_bytes() / C.bits(d)
        row["bits_per_coord"] = C.bits(d) / d
        rows.append(row)
    return rows


def throughput_table(d: int, repeats: int) -> list[dict]:
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook

    n, m = PowerSGD.view(d)
    x = torch.randn(d, generator=torch.Generator().manual_seed(0))
    matrix = torch.nn.functional.pad(x, (0, n * m - d)).reshape(n, m)
    fp16_s = _median_time(
        lambda: default_hooks.fp16_compress_hook(None, _Bucket(x.clone())).wait(), repeats
    )
    state = powerSGD_hook.PowerSGDState(
        process_group=None,
        matrix_approximation_rank=1,
        start_powerSGD_iter=2,
        min_compression_rate=0,
    )
    bucket = _Bucket(matrix.clone())
    for _ in range(3):  # pass start_powerSGD_iter
        powerSGD_hook.powerSGD_hook(state, bucket).wait()
        state.maybe_increase_iter(bucket)
    psgd_s = _median_time(lambda: powerSGD_hook.powerSGD_hook(state, bucket).wait(), repeats)
    rows = [
        {
            "method": "torch fp16_compress_hook",
            "ms": 1e3 * fp16_s,
            "Melem/s": d / fp16_s / 1e6,
            "vs_torch_fp16": 1.0,
            "vs_torch_powersgd": None,
        },
        {
            "method": "torch powerSGD_hook r=1",
            "ms": 1e3 * psgd_s,
            "Melem/s": d / psgd_s / 1e6,
            "vs_torch_fp16": psgd_s / fp16_s,
            "vs_torch_powersgd": 1.0,
        },
    ]
    for name in COMPRESSORS:
        C = get_compressor(name)
        g = torch.Generator().manual_seed(2)

        def roundtrip(C=C, g=g):
            C.decode(C.encode(x, g), x.shape, x.dtype, x.device)

        s = _median_time(roundtrip, repeats)
        rows.append(
            {
                "method": f"theorylab {C.spec}",
                "ms": 1e3 * s,
                "Melem/s": d / s / 1e6,
                "vs_torch_fp16": s / fp16_s,
                "vs_torch_powersgd": s / psgd_s if name == "powersgd" else None,
            }
        )
    return rows


# ---- part 3: plain-torch baselines for the same messages -------------------------------------


def _plain_baselines(x: torch.Tensor, d: int) -> dict:
    """Encode + decode with plain torch/numpy producing the same wire content (same bytes, or
    fewer/cheaper where noted), one callable per registry name."""
    import numpy as np

    k = max(1, math.ceil(0.01 * d - 1e-9))
    g = torch.Generator().manual_seed(0)

    def seed():
        return int(torch.randint(0, 2**62, (1,), generator=g))

    def uniform():  # numpy's fastest: SFC64 floats (~2x torch.rand on one CPU thread)
        return torch.from_numpy(
            np.random.Generator(np.random.SFC64(seed())).random(d, dtype=np.float32)
        )

    def cast(dt):
        return lambda: x.to(dt).view(torch.uint8).view(dt).to(torch.float32)

    def randk(scale):
        # the same operator: a uniform k-subset (without replacement) from a shared seed, by
        # numpy's O(k) sampler (Floyd's algorithm with a hash set), on both sides
        def f():
            s = seed()
            idx = np.random.default_rng(s).choice(d, k, replace=False, shuffle=False)
            vals = x[torch.from_numpy(idx)]  # sent: seed + k floats
            idx2 = np.random.default_rng(s).choice(d, k, replace=False, shuffle=False)
            out = torch.zeros(d)
            out[torch.from_numpy(idx2)] = vals * scale
            return out

        return f

    def topk():  # numpy's introselect (~4x torch.topk here); int64 indices (not bit-packed)
        a = np.abs(x.numpy())
        idx = torch.from_numpy(np.flatnonzero(a >= np.partition(a, d - k)[d - k])[:k])
        vals = x[idx]
        out = torch.zeros(d)
        out[idx] = vals
        return out

    def qsgd(s=7):
        def f():
            norm = torch.linalg.vector_norm(x)
            r = x.abs() * (s / norm)
            lvl = torch.floor(r)
            lvl += uniform() < r - lvl
            code = (torch.copysign(lvl, x) + s).to(torch.uint8)  # sgn(0) = +1: -0 + s = s
            packed = code[0::2] | (code[1::2] << 4)  # two 4-bit codes per byte
            c = torch.stack([packed & 15, packed >> 4], 1).reshape(-1)
            return (c.to(torch.float32) - s) * (norm / s)

        return f

    def natural():  # 16-bit codes (cheaper than the 10-bit ones sent); numpy's frexp, ldexp
        a = x.abs().numpy()
        mant, e = np.frexp(a)
        e += (uniform().numpy() < 2 * mant - 1) - 1
        code = (e + 160).astype(np.int16) * np.where(x.numpy() < 0, -1, 1).astype(np.int16)
        return torch.from_numpy(
            np.ldexp(np.sign(code).astype(np.float32), np.abs(code).astype(np.int32) - 160)
        )

    # byte -> its 8 signs as floats (bit j of the byte is coordinate j, 1 = negative)
    signs8 = np.array([[1 - 2 * ((b >> j) & 1) for j in range(8)] for b in range(256)], "f4")

    def l1_and_bits(chunk=1 << 15):  # one read of x: a cache-sized chunk at a time
        xn, a, neg = x.numpy(), np.empty(chunk, np.float32), np.empty(chunk, np.bool_)
        bits, s1 = np.empty(-(-d // 8), np.uint8), 0.0
        for j in range(0, d, chunk):
            xc = xn[j : j + chunk]
            s1 += float(np.abs(xc, out=a[: len(xc)]).sum())
            nb = np.less(xc, 0, out=neg[: len(xc)])
            bits[j // 8 : -(-(j + len(xc)) // 8)] = np.packbits(nb, bitorder="little")
        return s1, bits

    def sign(scaled):
        def f():
            if scaled:
                s1, bits = l1_and_bits()
                scale = np.float32(s1 / d)
            else:
                bits, scale = np.packbits((x < 0).numpy(), bitorder="little"), np.float32(1)
            # decode: one row gather of 8 floats per byte (numpy's take: ~3x unpackbits and
            # float arithmetic)
            out = np.take(signs8 * scale, bits, axis=0, mode="clip").reshape(-1)[:d]
            return torch.from_numpy(out)

        return f

    table = torch.tensor([[(b // 3**j) % 3 for j in range(5)] for b in range(243)]).float() - 1

    def terngrad():
        m = x.abs().amax()
        keep = uniform() * m < x.abs()
        t = (~keep).to(torch.uint8) + 2 * (keep & (x >= 0)).to(torch.uint8)
        t = t.reshape(-1, 5)
        b = (((t[:, 4] * 3 + t[:, 3]) * 3 + t[:, 2]) * 3 + t[:, 1]) * 3 + t[:, 0]
        return table.index_select(0, b.to(torch.int32)).reshape(-1) * m

    def fixed_point(s):
        # stochastic rounding by integer thresholds on raw SFC64 words, whole-array numpy (the
        # same arithmetic as theorylab's dither_codes): code = ((trunc(x c) + u) >> F) + s in
        # int32 (arithmetic shift; the sum < 2^31), the offset s added to the bytes
        F = 32 - (2 * s).bit_length()
        xn = x.numpy()

        def codes(norm):
            c = np.nextafter(np.float32(s * 2.0**F / norm), np.float32(0))
            R = np.multiply(xn, c, dtype=np.float32).astype(np.int32)
            u = np.random.SFC64(seed()).random_raw((d + 1) // 2).view(np.uint32)[:d]
            u >>= np.uint32(32 - F)
            R += u.view(np.int32)
            R >>= F
            code = R.astype(np.uint8)
            code += np.uint8(s)
            return code

        return codes

    def wide_lookup(buf, values):  # byte -> its per values, gathered as one wide integer
        per = values.shape[1]
        tab = values.contiguous().view(torch.int64 if per == 2 else torch.int32).reshape(-1)
        return tab.index_select(0, buf.to(torch.int32)).view(torch.float32)

    nibble = torch.stack([torch.arange(256) & 15, torch.arange(256) >> 4], 1)

    def qsgd_fixed(s=7):
        codes = fixed_point(s)

        def f():
            # the rounded norm bounds every |x_i| (see QSGD._quantize_fixed): one read pass
            norm = float(torch.linalg.vector_norm(x))
            v = torch.from_numpy(codes(norm)).view(torch.int16)
            packed = (v | (v >> 4)).to(torch.uint8)  # two 4-bit codes per byte
            table = (torch.arange(16, dtype=torch.float32) - s) * (norm / s)
            return wide_lookup(packed, table[nibble])

        return f

    trits = np.array([[(b // 3**j) % 3 for j in range(5)] for b in range(256)])
    magic = np.uint64(81 + (27 << 8) + (9 << 16) + (3 << 24) + (1 << 32))

    def terngrad_fixed():
        codes = fixed_point(1)

        def f():
            lo, hi = torch.aminmax(x)
            m = max(-float(lo), float(hi))
            t = np.concatenate([codes(m), np.zeros(8, np.uint8)])  # d % 5 == 0 here
            # five base-3 digits per byte: byte 4 of (the 8 bytes from each group) * magic
            # (as theorylab's dither_codes_np), then one row gather of 5 floats per byte
            v = np.ndarray((d // 5,), dtype=np.uint64, buffer=t, strides=(5,)) * magic
            b = v.view(np.uint8)[4::8]
            table = np.array([-m, 0.0, m], dtype=np.float32)[trits]
            return torch.from_numpy(np.take(table, b, axis=0, mode="clip").reshape(-1))

        return f

    return {
        "identity": lambda: x.view(torch.uint8).clone().view(torch.float32),
        "fp16": cast(torch.float16),
        "bf16": cast(torch.bfloat16),
        "rand-k": randk(d / k),
        "rand-k-unscaled": randk(1.0),
        "top-k": topk,
        "qsgd": [qsgd(), qsgd_fixed()],
        "scaled-qsgd": [qsgd(), qsgd_fixed()],
        "natural": natural,
        "sign": sign(False),
        "scaled-sign": sign(True),
        "terngrad": [terngrad, terngrad_fixed()],
    }


def _allreduce_worker(rank, path, d, repeats, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=2)
    x = torch.randn(d)
    times = []
    for i in range(repeats + 2):
        dist.barrier()
        t = time.perf_counter()
        dist.all_reduce(x)
        if i >= 2:
            times.append(time.perf_counter() - t)
    if rank == 0:
        out.put((statistics.median(times), min(times)))
    dist.destroy_process_group()


def allreduce_seconds(d: int, repeats: int) -> tuple[float, float]:
    """Median and minimum time of an uncompressed gloo all-reduce of ``d`` float32 between 2
    processes."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        procs = [
            ctx.Process(
                target=_allreduce_worker, args=(r, os.path.join(tmp, "pg"), d, repeats, out)
            )
            for r in range(2)
        ]
        for p in procs:
            p.start()
        result = out.get(timeout=600)
        for p in procs:
            p.join()
    return result


def _exchange_worker(rank, world, path, d, repeats, specs, out):
    """One rank of the full exchange: per repeat, an uncompressed all-reduce (sum) of ``x``,
    then for every compressor encode ``x``, all-gather the bytes, decode all ``world`` messages
    and sum them (the all-reduce's result); rank 0 reports the wall times."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=world)
    x = torch.randn(d, generator=torch.Generator().manual_seed(rank))
    y = x.clone()
    comps = [get_compressor(s) for s in specs]
    gens = [torch.Generator().manual_seed(100 + rank) for _ in specs]

    def exchange(C, g):
        b = C.encode(x, g)  # every rank's message has the same size: one plain all-gather
        bufs = [torch.empty_like(b) for _ in range(world)]
        dist.all_gather(bufs, b)
        return C.decode_sum(bufs, x.shape)  # no dense tensor per message

    ar, times = [], [[] for _ in specs]
    for i in range(repeats + 1):  # the first round warms up
        dist.barrier()
        t = time.perf_counter()
        dist.all_reduce(y)
        a = time.perf_counter() - t
        if i:
            ar.append(a)
        for j, (C, g) in enumerate(zip(comps, gens)):
            dist.barrier()
            t = time.perf_counter()
            exchange(C, g)
            if i:
                times[j].append(time.perf_counter() - t)
    if rank == 0:
        out.put((ar, times))
    dist.destroy_process_group()


def exchange_table(d: int, repeats: int, world: int = 4) -> list[dict]:
    """Issue 13 section 1, full compressed exchange at ``world`` processes (gloo, 1 thread
    each): encode + all-gather of the bytes + decode all (summed) vs an uncompressed all-reduce,
    paired by repeat (medians of the per-repeat ratios)."""
    import torch.multiprocessing as mp

    specs = list(COMPRESSORS)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pg")
        procs = [
            ctx.Process(target=_exchange_worker, args=(r, world, path, d, repeats, specs, out))
            for r in range(world)
        ]
        for p in procs:
            p.start()
        ar, times = out.get(timeout=1200)
        for p in procs:
            p.join()
    rows = [
        {
            "compressor": f"uncompressed all-reduce (n={world})",
            "ms": 1e3 * statistics.median(ar),
            "min_ms": 1e3 * min(ar),
            "bytes_frac": 1.0,
            "vs_allreduce": 1.0,
            "vs_allreduce_min": 1.0,
            "target_met": None,
        }
    ]
    for name, ts in zip(specs, times):
        C = get_compressor(name)
        frac = C.bits(d) / (32 * d)
        ratio = statistics.median(t / a for t, a in zip(ts, ar))
        rows.append(
            {
                "compressor": C.spec,
                "ms": 1e3 * statistics.median(ts),
                "bytes_frac": frac,
                "min_ms": 1e3 * min(ts),
                "vs_allreduce": ratio,
                "vs_allreduce_min": min(ts) / min(ar),
                "target_met": min(ts) < min(ar) if _eighth(C, d) else None,
            }
        )
    return rows


def payoff_table(d: int, repeats: int, allreduce, psgd_torch_s: float) -> list:
    """Issue 13 section 1: ours / plain (medians of paired repeats) and ours / all-reduce.

    ``allreduce``: None or ``(median, min)`` seconds of the 2-process all-reduce.
    ``vs_allreduce`` is median / median; ``vs_allreduce_min`` is min / min, the runs least
    disturbed by other processes (on a shared machine the medians measure its load), and is
    the one the target is judged on."""
    allreduce_s, allreduce_min = allreduce if allreduce else (None, None)
    x = torch.randn(d, generator=torch.Generator().manual_seed(0))
    plain = _plain_baselines(x, d)
    rows = []
    for name in COMPRESSORS:
        C = get_compressor(name)
        g = torch.Generator().manual_seed(2)

        def ours(C=C, g=g):
            C.decode(C.encode(x, g), x.shape, x.dtype, x.device)

        base = plain.get(name)
        # several plain candidates for one message: each pair takes the fastest of them
        bases = [] if base is None else base if isinstance(base, list) else [base]
        ours()
        for b in bases:
            b()
        t_ours, c_ours, ratios, wall_ratios = [], [], [], []
        for _ in range(repeats):  # interleaved: each ratio pairs runs made close in time
            t, c = time.perf_counter(), time.thread_time()
            ours()
            a, ac = time.perf_counter() - t, time.thread_time() - c
            t_ours.append(a)
            c_ours.append(ac)
            if bases:
                b = bc = math.inf
                for fn in bases:
                    t, c = time.perf_counter(), time.thread_time()
                    fn()
                    b = min(b, time.perf_counter() - t)
                    bc = min(bc, time.thread_time() - c)
                ratios.append(ac / bc)
                wall_ratios.append(a / b)
        s = statistics.median(t_ours)
        frac = C.bits(d) / (32 * d)
        vs_plain = (
            statistics.median(ratios)
            if ratios
            else (s / psgd_torch_s if name == "powersgd" else None)
        )
        rows.append(
            {
                "compressor": C.spec,
                "ms": 1e3 * s,
                "cpu_ms": 1e3 * statistics.median(c_ours),
                "bytes_frac": frac,
                "vs_plain": vs_plain,
                "vs_plain_wall": statistics.median(wall_ratios) if wall_ratios else None,
                "vs_allreduce": s / allreduce_s if allreduce_s else None,
                "vs_allreduce_min": min(t_ours) / allreduce_min if allreduce_min else None,
                # this thread's CPU time (its wall clock on an idle core) / the fastest all-reduce
                "cpu_vs_allreduce_min": statistics.median(c_ours) / allreduce_min
                if allreduce_min
                else None,
                "target_met": None
                if allreduce_s is None
                else (
                    (vs_plain is None or vs_plain <= 1.5)
                    and (not _eighth(C, d) or min(t_ours) < allreduce_min)
                ),
            }
        )
    return rows


def floor_table(d: int, repeats: int) -> list[dict]:
    """Lower bounds on a stochastic quantizer's encode + decode at ``d`` on this machine, each
    a single library call (thread CPU time, min of ``repeats``): the random bits (one 32-bit
    word per coordinate from numpy's fastest bit generator; float uniforms cost more), one
    read pass over ``x`` (its norm, which validation and QSGD need), and one write of the
    decoded vector (a gather of 8-byte groups from a 256-entry byte table)."""
    import numpy as np

    x = torch.randn(d)
    table = torch.randn(256, 2).view(torch.int64).reshape(-1)
    idx = torch.randint(0, 256, (d // 2,), dtype=torch.uint8)
    low = np.random.default_rng(0).integers(0, 256, d, dtype=np.uint8)
    cases = {
        "random words: SFC64 random_raw, 32 bits x d": lambda: np.random.SFC64(1).random_raw(
            (d + 1) // 2
        ),
        "random words: PCG64 random_raw, 32 bits x d": lambda: np.random.PCG64(1).random_raw(
            (d + 1) // 2
        ),
        # drawing 8 of the F bits per coordinate (the rest only where the low byte of the sum
        # is 255, probability 2^-8) is exact but needs a search for those ties over d bytes
        "random words: SFC64 random_raw, 8 bits x d": lambda: np.random.SFC64(1).random_raw(
            (d + 7) // 8
        ),
        "tie search: d uint8 == 255, then flatnonzero": lambda: np.flatnonzero(low == 255),
        "float uniforms: SFC64 random(float32) x d": lambda: np.random.Generator(
            np.random.SFC64(1)
        ).random(d, dtype=np.float32),
        "float uniforms: torch.rand x d": lambda: torch.rand(d),
        "one read pass: torch.linalg.vector_norm(x)": lambda: torch.linalg.vector_norm(x),
        "decode write: 4-bit byte-table gather of d": lambda: table.index_select(
            0, idx.to(torch.int32)
        ),
    }
    rows = []
    for name, fn in cases.items():
        fn()
        ts = []
        for _ in range(repeats):
            c = time.thread_time()
            fn()
            ts.append(time.thread_time() - c)
        rows.append({"floor (one call, thread CPU)": name, "min_ms": 1e3 * min(ts)})
    return rows


def _eighth(C, d: int) -> bool:
    """Whether ``C`` sends at most 1/8 of the float32 bytes (a header of <= 8 bytes aside, so
    that QSGD's 4 bits per coordinate plus its norm counts)."""
    return C.bits(d) <= 4 * d + 64


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument(
        "--no-allreduce",
        action="store_true",
        help="skip the gloo runs (the 2-process all-reduce and the full exchange)",
    )
    parser.add_argument("--world", type=int, default=4, help="processes of the full exchange")
    parser.add_argument("--skip-bytes", action="store_true", help="skip part 1 (bytes)")
    args = parser.parse_args(argv)
    dims = [10**k for k in range(3, 6 if args.quick else 8)]
    d_tp, repeats = (10**5, 5) if args.quick else (10**6, 7)
    torch.set_num_threads(1)

    if not args.skip_bytes:
        print("== bytes sent / declared bits (float32; header included in bits) ==")
        print(format_table(bytes_table(dims)))

    with tempfile.TemporaryDirectory() as tmp:
        dist.init_process_group(
            "gloo", init_method=f"file://{os.path.join(tmp, 'pg')}", rank=0, world_size=1
        )
        try:
            print(
                f"\n== encode + decode, d = {d_tp}, median of {repeats}, 1 thread; ratios are "
                "time / torch hook time (lower is faster) =="
            )
            tp = throughput_table(d_tp, repeats)
            print(format_table(tp))
        finally:
            dist.destroy_process_group()
    psgd_torch_s = next(r["ms"] for r in tp if r["method"].startswith("torch powerSGD")) / 1e3
    # the all-reduce before and after the pay-off table (the load of a shared machine drifts)
    ar = None if args.no_allreduce else allreduce_seconds(d_tp, 4 * repeats)
    print(
        f"\n== pay-off at d = {d_tp} (1 thread, medians of {2 * repeats + 1} interleaved pairs): "
        "vs_plain = ours / plain torch for the same message, thread CPU time (robust to the "
        "machine's load; vs_plain_wall: wall clock), target <= 1.5 (powersgd: / torch's hook, "
        "wall); vs_allreduce = ours / uncompressed gloo all-reduce, 2 processes"
        + " (median / median); vs_allreduce_min = min / min, target < 1 where bytes_frac <= 1/8 =="
    )
    table = payoff_table(d_tp, 2 * repeats + 1, ar, psgd_torch_s)
    if ar is not None:
        ar2 = allreduce_seconds(d_tp, 4 * repeats)
        print(
            f"(all-reduce median / min before the table: {1e3 * ar[0]:.2f} / {1e3 * ar[1]:.2f} "
            f"ms, after: {1e3 * ar2[0]:.2f} / {1e3 * ar2[1]:.2f} ms)"
        )
    print(format_table(table))
    print(format_table(floor_table(d_tp, 4 * repeats)))
    if not args.no_allreduce:
        print(
            f"\n== full compressed exchange at d = {d_tp}, {args.world} processes (gloo, 1 thread "
            "each): encode + all-gather of the bytes + decode all (summed) vs the uncompressed "
            f"all-reduce: vs_allreduce = median of {2 * repeats + 1} paired ratios, "
            "vs_allreduce_min = min / min (target < 1 where bytes_frac <= 1/8) =="
        )
        print(format_table(exchange_table(d_tp, 2 * repeats + 1, args.world)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
