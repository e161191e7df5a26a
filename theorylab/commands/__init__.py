"""Subcommands of the ``theorylab`` CLI, one module each.

A command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
It prints a readable table by default and its result as JSON with ``--json``
(see :func:`theorylab.commands._output.emit`).
"""
