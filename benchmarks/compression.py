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

Usage: ``python benchmarks/compression.py [--quick]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from theorylab.commands._output import format_table  # noqa: E402
from theorylab.compressors import COMPRESSORS, PowerSGD, get_compressor  # noqa: E402


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    args = parser.parse_args(argv)
    dims = [10**k for k in range(3, 6 if args.quick else 8)]
    d_tp, repeats = (10**5, 5) if args.quick else (10**6, 7)
    torch.set_num_threads(1)

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
            print(format_table(throughput_table(d_tp, repeats)))
        finally:
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
