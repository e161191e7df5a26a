"""The planted-bug harness the claim tests share (issue 14: every claim must be able to fail).

A test module declares ``BUGS``: bug -> (a zero-argument function returning the patches
``[(object, attribute, new value), ...]``, ...), the rest of the tuple being the module's own
(the claims that must catch the bug, config overrides). :func:`apply_bug` patches a bug in and
returns what undoes it; :func:`patch_ranks` makes a :class:`verify.claims.ClaimContext` run every
worker-pool call with the bug patched in the ranks too (:func:`in_worker`), so a bug in the
distributed executor is really exercised.
"""

from __future__ import annotations

import importlib


def _patches(entry):
    return (entry[0] if isinstance(entry, tuple) else entry)()


def apply_bug(bugs: dict, bug: str) -> list:
    """Patch ``bugs[bug]`` in; return what undoes it (for :func:`restore`)."""
    undo = []
    for obj, attr, new in _patches(bugs[bug]):
        undo.append((obj, attr, obj.__dict__[attr]))
        setattr(obj, attr, new)
    return undo


def restore(undo: list) -> None:
    for obj, attr, old in reversed(undo):
        setattr(obj, attr, old)


def in_worker(rank, world_size, module: str, bug: str, fn, *args, **kwargs):
    """Run ``fn`` on a pool rank with ``module.BUGS[bug]`` patched in (then undone)."""
    undo = apply_bug(importlib.import_module(module).BUGS, bug)
    try:
        return fn(rank, world_size, *args, **kwargs)
    finally:
        restore(undo)


def patch_ranks(ctx, monkeypatch, module: str, bug: str) -> None:
    """Every ``ctx.run_on_ranks`` call runs with the bug patched in on the ranks."""

    def in_workers(fn, *args, **kwargs):
        return ctx.pool.run(
            in_worker, module, bug, fn, *args, run_timeout_s=ctx.run_timeout_s, **kwargs
        )

    monkeypatch.setattr(ctx, "run_on_ranks", in_workers)
