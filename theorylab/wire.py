"""Compatibility alias: the wire format lives in :mod:`theorylab.compressors.wire`."""

from theorylab.compressors.wire import *  # noqa: F403
from theorylab.compressors.wire import __all__  # noqa: F401
