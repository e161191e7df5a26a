"""The ``theorylab`` command line: one subcommand per capability.

Subcommands come from :data:`theorylab.commands.registry`: the theory commands built in, and
those that installed plugins add (``theorylab verify`` when the ``verify`` package is present;
see :mod:`theorylab.commands`). Each module is imported only when used, so
``theorylab topology`` never imports torch.
"""

from __future__ import annotations

import argparse
import os
import sys

from theorylab.commands import registry

__all__ = ["main", "build_parser"]


def build_parser(argv) -> argparse.ArgumentParser:
    """The parser, with only the subcommand named in ``argv`` loaded (all of them for help)."""
    parser = argparse.ArgumentParser(
        prog="theorylab",
        description="Compute the theory of distributed optimization, and verify it.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    if wanted not in registry.commands:
        registry.load_plugins()  # a plugin command, or the help text (every command)
    # Import only the requested command (so `theorylab topology` never imports torch);
    # all of them when none is named, for the help text.
    names = [wanted] if wanted in registry.commands else list(registry.commands)
    for name in names:
        try:
            module = registry.load_command(name)
        except ModuleNotFoundError as exc:  # a command whose module is not installed
            if wanted == name:
                raise SystemExit(f"theorylab: command {name!r} is unavailable: {exc}") from exc
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    from theorylab.errors import SolverError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:  # the reader closed the pipe (`theorylab ... | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 1
    except (ValueError, TypeError, OSError) as exc:  # bad input, or a file that cannot be read
        print(f"theorylab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except SolverError as exc:  # a numerical solver gave up: its message, never a traceback
        print(f"theorylab {args.command}: solver failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
