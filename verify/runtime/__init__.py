"""The two executors of the communication interface, and the launcher.

* :class:`SimulatedCommunicator`: all ``n`` nodes stacked in one process (mixing is ``W @ X``).
* :class:`DistributedCommunicator`: one node per ``torch.distributed`` rank.
* :func:`launch`, :class:`WorkerPool`: start ranks on one machine (spawn);
  :func:`init_from_env`: join a ``torchrun`` job; ``python -m verify.runtime.entry``: the
  ``torchrun`` entry point.

Both communicators count bytes under the same conventions (see :mod:`verify.runtime.simulated`)
and give the same trajectories for the same seeds.
"""

from verify.runtime.distributed import DistributedCommunicator, rank_device
from verify.runtime.launch import DistributedError, WorkerPool, free_port, init_from_env, launch
from verify.runtime.simulated import SimulatedCommunicator, schedule_matrices

__all__ = [
    "SimulatedCommunicator",
    "DistributedCommunicator",
    "DistributedError",
    "WorkerPool",
    "launch",
    "init_from_env",
    "free_port",
    "rank_device",
    "schedule_matrices",
]
