"""theorylab: the theory of distributed optimization as numbers you can compute.

Pure computation, importable without starting any process: topologies and mixing matrices,
spectral gaps, optimal weights, compressor constants, predicted rates, exact second-moment
predictions and communication cost. The companion package :mod:`verify` runs the algorithms on
``torch.distributed`` and checks these numbers against measurements.

Conventions (shared/DESIGN.md): a mixing matrix ``W`` is n x n, row ``i`` holds node ``i``'s
receive weights (``x_i <- sum_j W_ij x_j``); ``rho = ||W - 11^T/n||_2`` and
``spectral_gap = 1 - rho``.
"""

from theorylab.errors import TheorylabError, TheorylabWarning

__version__ = "0.1.0"
__all__ = ["TheorylabError", "TheorylabWarning", "__version__"]
