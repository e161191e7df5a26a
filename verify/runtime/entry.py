"""``torchrun`` entry point: run ``MODULE:FUNC(rank, world_size, **args)`` on every rank.

Usage::

    torchrun --standalone --nproc-per-node=2 -m verify.runtime.entry \
        --task verify.tasks:ring_mix_check --args '{"d": 4}' --out results/ring.json

The tasks (:mod:`verify.tasks`) live outside the executor, which imports no algorithm; the old
names ``verify.runtime.entry:ring_mix_check`` / ``quadratic_setup`` / ``quadratic_run`` still
resolve (to :mod:`verify.tasks`).

Every rank initialises the process group from torchrun's environment (:func:`init_from_env`),
runs the function, and rank 0 writes ``{"task", "args", "world_size", "backend", "device",
"result"}`` to ``--out`` as JSON. A result with ``to_dict()`` (e.g. a
:class:`verify.run.Trajectory`) is written through it; numpy arrays and tensors become lists. A
rank that raises makes torchrun exit non-zero with the rank's traceback (``record``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import warnings

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from theorylab.errors import TheorylabError
from verify.runtime.launch import init_from_env

__all__ = ["main", "resolve_task", "to_jsonable"]

#: task functions that used to live here, now in verify.tasks (old --task paths keep working)
_MOVED = ("ring_mix_check", "quadratic_setup", "quadratic_run")


def _moved(name: str):
    warnings.warn(
        f"verify.runtime.entry.{name} moved to verify.tasks.{name} (the executor imports no "
        f"algorithm); import verify.tasks.{name}, or pass --task verify.tasks:{name}",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module("verify.tasks"), name)


def __getattr__(name: str):
    if name in _MOVED:  # `from verify.runtime.entry import quadratic_setup` (old import path)
        return _moved(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_task(spec: str):
    """The function named by ``"package.module:function"``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TheorylabError(f"--task must look like 'package.module:function', got {spec!r}")
    if module_name == __name__ and attr in _MOVED:
        fn = _moved(attr)
    else:
        fn = getattr(importlib.import_module(module_name), attr, None)
    if not callable(fn):
        raise TheorylabError(f"{spec!r} does not name a callable in module {module_name!r}")
    return fn


def to_jsonable(value):
    """``value`` with ``to_dict()`` objects, arrays and tensors turned into JSON types."""
    if hasattr(value, "to_dict"):
        return to_jsonable(value.to_dict())
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m verify.runtime.entry",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", required=True, help="MODULE:FUNC, called as FUNC(rank, world, **args)")
    p.add_argument("--args", default="{}", help="JSON object of keyword arguments for FUNC")
    p.add_argument(
        "--out", required=True, help="JSON file rank 0 writes the result to (folders created)"
    )
    p.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    p.add_argument("--device", default="cpu", help="cpu or cuda (rank r uses cuda:LOCAL_RANK)")
    p.add_argument("--timeout", type=float, default=60.0, help="process-group timeout, seconds")
    return p


@record
def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the task on this rank, write rank 0's result; returns 0."""
    args = _parser().parse_args(argv)
    kwargs = json.loads(args.args)
    if not isinstance(kwargs, dict):
        raise TheorylabError(f"--args must be a JSON object, got {args.args!r}")
    fn = resolve_task(args.task)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rank, world_size = init_from_env(args.backend, args.device, args.timeout)
    try:
        result = fn(rank, world_size, **kwargs)
        if rank == 0:
            payload = {
                "task": args.task,
                "args": kwargs,
                "world_size": world_size,
                "backend": args.backend,
                "device": args.device,
                "result": to_jsonable(result),
            }
            out_dir = os.path.dirname(os.path.abspath(args.out))
            os.makedirs(out_dir, exist_ok=True)  # e.g. --out results/run.json on a fresh clone
            with tempfile.NamedTemporaryFile("w", dir=out_dir, delete=False, suffix=".tmp") as f:
                json.dump(payload, f, indent=1)
            os.replace(f.name, args.out)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
