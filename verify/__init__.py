"""verify: run the algorithms for real (torch.distributed or a stacked simulator) and check
theorylab's predictions against measurements.

Layout: :mod:`verify.comm` is the communication interface an algorithm is written against;
:mod:`verify.runtime` holds its two executors (distributed and simulated) and the launcher;
:mod:`verify.algorithms` holds each algorithm as the update rule of one node;
:mod:`verify.claims` holds the claims that ``theorylab verify`` runs.
"""

__all__: list[str] = []
