"""Any theorylab compressor as a PyTorch DistributedDataParallel communication hook.

The hook replaces DDP's all-reduce of each gradient bucket ``g_j`` (rank ``j``'s flat local
gradient, one ``d``-vector per bucket) by::

    p_j = g_j + e_j                       1. add the memory (error_feedback; else p_j = g_j)
    buf_j = C.encode(p_j)                 2. compress and pack: C.nbytes((d,)) bytes
    all_gather(buf_j)                     3. every rank receives every rank's bytes
    out = sum_j decode(buf_j) / W         4. average of the compressed messages (W = world size)
    e_j <- p_j - decode(buf_j)            5. remember what was not sent (error feedback)

so the bytes on the wire are exactly the compressor's declared ``bits(d)`` (rounded up to bytes)
per rank and bucket. With the identity compressor the result equals DDP's default all-reduce
hook (``sum_j g_j / W``, the same for W = 2 bit for bit). With an unbiased compressor in U(omega)
the output is unbiased with variance ``<= omega/W^2 sum_j ||p_j||^2``; with error feedback a
contractive compressor gives EF-SGD (Karimireddy et al. 2019): the sum of the outputs plus the
average memory equals the sum of the average gradients exactly.

Compression randomness comes from one ``torch.Generator`` per rank seeded from
``(seed, "algorithm", rank)`` (:func:`verify.seeding.node_generator`). Stateful compressors
(PowerSGD's warm start) get one copy per bucket. The error memory is kept per parameter, so
DDP's bucket rebuild after the first iteration (which can reorder a bucket) does not scramble it.

Example
-------
::

    from torch.nn.parallel import DistributedDataParallel as DDP
    from verify.ddp_hooks import CompressionHookState, compression_hook
    model = DDP(net)
    model.register_comm_hook(CompressionHookState("qsgd:s=4", error_feedback=False),
                             compression_hook)

References
----------
PyTorch DDP communication hooks, ``torch.distributed.algorithms.ddp_comm_hooks``.
S. P. Karimireddy et al., "Error feedback fixes SignSGD", ICML 2019, arXiv:1901.09847.
"""

import copy  # no `from __future__ import annotations`: DDP inspects the hook's annotations

import torch
import torch.distributed as dist

from theorylab.compressors import Compressor, get_compressor
from theorylab.errors import check_int
from verify.seeding import node_generator

__all__ = ["CompressionHookState", "compression_hook"]


class CompressionHookState:
    """Hyperparameters and memory of :func:`compression_hook`.

    Parameters
    ----------
    compressor : str or Compressor
        Spec for :func:`theorylab.compressors.get_compressor` or a compressor object.
    error_feedback : bool, default False
        Keep the per-bucket memory ``e`` (EF-SGD); needed for biased compressors.
    seed : int >= 0, default 0
        Seeds this rank's compression generator (``(seed, "algorithm", rank)``).
    process_group : ProcessGroup or None
        Group to communicate in (None: the default group).

    Attributes
    ----------
    bytes_sent : int
        Bytes of encoded messages this rank has contributed (``C.nbytes`` per bucket per step).
    """

    def __init__(
        self,
        compressor: str | Compressor,
        error_feedback: bool = False,
        seed: int = 0,
        process_group=None,
    ):
        self.compressor = get_compressor(compressor)
        self.error_feedback = bool(error_feedback)
        self.seed = check_int("seed", seed, minimum=0)
        self.process_group = process_group
        self.bytes_sent = 0
        self._errors: dict[int, torch.Tensor] = {}  # id(parameter) -> flat memory
        self._compressors: dict[tuple, Compressor] = {}
        self._generator = None

    def error_by_parameter(self, parameters) -> list[torch.Tensor]:
        """This rank's error memory ``e`` for each of ``parameters`` (zeros where none yet),
        shaped like the parameters.

        The memory is kept per parameter, not per bucket, so it survives DDP's bucket rebuild
        after the first iteration (which may reorder parameters within a bucket).
        """
        return [
            self._errors[id(p)].view_as(p) if id(p) in self._errors else torch.zeros_like(p)
            for p in parameters
        ]

    def generator(self, device) -> torch.Generator:
        """This rank's generator (created on first use, on the gradients' device)."""
        if self._generator is None or self._generator.device != torch.device(device):
            rank = dist.get_rank(self.process_group)
            self._generator = node_generator(self.seed, "algorithm", rank, device)
        return self._generator

    def compressor_for(self, parameters) -> Compressor:
        """The compressor of the bucket holding ``parameters`` (a private copy when it keeps
        state, e.g. PowerSGD's warm start)."""
        if not self.compressor.stateful:
            return self.compressor
        key = tuple(id(p) for p in parameters)
        if key not in self._compressors:
            self._compressors[key] = copy.deepcopy(self.compressor)
        return self._compressors[key]


def compression_hook(
    state: CompressionHookState, bucket: dist.GradBucket
) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: all-gather ``C(g_j + e_j)`` (encoded) and average (see module)."""
    group = state.process_group
    world = dist.get_world_size(group)
    grad = bucket.buffer()
    params = bucket.parameters()  # the buffer is their gradients concatenated in this order
    C = state.compressor_for(params)
    p = grad
    if state.error_feedback and any(id(t) in state._errors for t in params):  # 1.
        p = grad + torch.cat([e.reshape(-1) for e in state.error_by_parameter(params)])
    buf = C.encode(p, state.generator(grad.device))  # 2.
    state.bytes_sent += buf.numel()
    bufs = [torch.empty_like(buf) for _ in range(world)]
    fut = dist.all_gather(bufs, buf, group=group, async_op=True).get_future()  # 3.
    rank = dist.get_rank(group)

    def average(_fut) -> torch.Tensor:
        q = [C.decode(b, grad.shape, grad.dtype, grad.device) for b in bufs]
        out = q[0] / world
        for qj in q[1:]:  # 4. rank order, like the all-reduce's sum of g_j / W
            out = out + qj / world
        if state.error_feedback:  # 5.
            e = p - q[rank]
            offset = 0
            for t in params:
                state._errors[id(t)] = e[offset : offset + t.numel()]
                offset += t.numel()
        return grad.copy_(out)

    return fut.then(average)
