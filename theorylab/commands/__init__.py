"""Subcommands of the ``theorylab`` CLI, one module each, and the registry that finds them.

A command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
It prints a readable table by default and its result as JSON with ``--json``
(see :func:`theorylab.output.emit`).

The theory commands are built in (:data:`BUILTIN`). Other packages add commands, and hooks such
as the alpha-beta calibrator of ``theorylab design --calibrate``, through the entry-point group
:data:`ENTRY_POINT_GROUP`: each entry point names a function ``register(registry)`` that calls
:meth:`Registry.add_command` / :meth:`Registry.add_calibrator`. ``verify`` declares::

    [project.entry-points."theorylab.commands"]
    verify = "verify.cli:register"

so ``pip install`` of theorylab alone gives every theory command, and ``theorylab verify``
appears when verify is installed. Entry points need installed metadata; a checkout run with
``PYTHONPATH`` has none, so the plugins of :data:`FALLBACK_PLUGINS` are also imported directly
when importable and not already found as entry points. theorylab itself never imports verify:
the plugin names are data.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from theorylab.errors import TheorylabError

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "FALLBACK_PLUGINS",
    "Registry",
    "registry",
]

#: built-in subcommand name -> module
BUILTIN = {
    "topology": "theorylab.commands.topology",
    "weights": "theorylab.commands.weights",
    "design": "theorylab.commands.design",
    "compressors": "theorylab.commands.compressors",
    "rate": "theorylab.commands.rate",
}

#: entry-point group scanned for plugins (each value is ``module:register``)
ENTRY_POINT_GROUP = "theorylab.commands"

#: plugins tried by import when no installed entry point names them (checkout on PYTHONPATH)
FALLBACK_PLUGINS = ("verify.cli:register",)


class Registry:
    """Commands (name -> module path) and calibrators (name -> callable), built in + plugins.

    Plugins are loaded once, on the first call that needs them (:meth:`load_plugins`); a plugin
    that fails to import is recorded in :attr:`errors` and skipped, so a broken or partial
    install never hides the theory commands.
    """

    def __init__(self, builtin: dict[str, str]):
        self.commands: dict[str, str] = dict(builtin)
        self.calibrators: dict[str, Callable[[], Any]] = {}
        self.errors: dict[str, str] = {}
        self._loaded = False

    def add_command(self, name: str, module: str) -> None:
        """Add subcommand ``name``, implemented by ``module`` (HELP, add_arguments, run)."""
        if not isinstance(name, str) or not name or name.startswith("-"):
            raise TheorylabError(f"a command name must be a non-empty word, got {name!r}")
        if self.commands.get(name, module) != module:
            raise TheorylabError(
                f"command {name!r} is already provided by {self.commands[name]!r}; "
                f"{module!r} cannot replace it"
            )
        self.commands[name] = module

    def add_calibrator(self, name: str, fn: Callable[[], Any]) -> None:
        """Add an alpha-beta calibrator: ``fn()`` returns an object with ``alpha``, ``beta``,
        ``r2`` and ``to_dict()`` (e.g. ``verify.calibrate.Calibration``)."""
        if not callable(fn):
            raise TypeError(f"calibrator {name!r} must be callable, got {fn!r}")
        self.calibrators[name] = fn

    def load_plugins(self) -> Registry:
        """Run every plugin's ``register(self)``: entry points first, then the fallbacks."""
        if self._loaded:
            return self
        self._loaded = True
        specs = {ep.value.replace(" ", ""): ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
        for spec in FALLBACK_PLUGINS:
            specs.setdefault(spec, spec.partition(":")[0])
        for spec, label in specs.items():
            try:
                register = _resolve(spec)
            except ModuleNotFoundError as exc:
                top = spec.partition(":")[0].split(".")[0]
                if exc.name != top:  # the plugin exists but one of its imports is missing
                    self.errors[label] = f"{spec}: {exc}"
                continue
            except (ImportError, AttributeError) as exc:
                self.errors[label] = f"{spec}: {exc}"
                continue
            try:
                register(self)
            except Exception as exc:  # a broken plugin must not hide the theory commands
                self.errors[label] = f"{spec}: register failed: {type(exc).__name__}: {exc}"
        return self

    def load_command(self, name: str) -> ModuleType:
        """The module of subcommand ``name`` (imported now)."""
        if name not in self.commands:
            self.load_plugins()
        if name not in self.commands:
            raise TheorylabError(f"unknown command {name!r}; choose from {sorted(self.commands)}")
        return importlib.import_module(self.commands[name])

    def calibrator(self, name: str | None = None) -> Callable[[], Any]:
        """The calibrator ``name`` (the first when None); a clear error when none is installed."""
        self.load_plugins()
        if not self.calibrators:
            raise TheorylabError(
                "--calibrate measures alpha and beta on the real runtime, which needs the "
                "`verify` package (the torch.distributed half of theorylab): install it, or "
                "give --alpha and --beta yourself"
                + (f" (plugin errors: {self.errors})" if self.errors else "")
            )
        if name is None:
            return next(iter(self.calibrators.values()))
        if name not in self.calibrators:
            raise TheorylabError(
                f"unknown calibrator {name!r}; choose from {sorted(self.calibrators)}"
            )
        return self.calibrators[name]


def _resolve(spec: str) -> Callable:
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


#: the registry the ``theorylab`` command uses
registry = Registry(BUILTIN)
