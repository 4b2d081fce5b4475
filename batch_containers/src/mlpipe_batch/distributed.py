"""The process group of a distributed run (NCCL on GPU, gloo on CPU), the few collectives the trainer needs,
and the stop signal that SIGTERM/SIGINT raise."""

from __future__ import annotations

import datetime
import os
import signal
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from mlpipe_batch.launcher import Topology


class StopSignal:
    """SIGTERM/SIGINT set a flag that the training loop polls; a second signal exits at once."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def install(self) -> StopSignal:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            os._exit(128 + signum)
        self.signum = signum


class Dist:
    """The process group (NCCL on GPU, gloo on CPU) plus a gloo group for small host-side collectives."""

    def __init__(self, topology: Topology, device: torch.device, timeout_s: float) -> None:
        self.topology = topology
        self.rank = topology.rank
        self.world_size = topology.world_size
        self.device = device
        self._cpu_group: Any = None
        if topology.distributed:
            os.environ.update(
                RANK=str(topology.rank),
                WORLD_SIZE=str(topology.world_size),
                LOCAL_RANK=str(topology.local_rank),
                MASTER_ADDR=topology.master_addr,
                MASTER_PORT=str(topology.master_port),
            )
            backend = "nccl" if device.type == "cuda" else "gloo"
            timeout = datetime.timedelta(seconds=timeout_s)
            # Imported before the group exists: torch.distributed.nn.functional (which DDP imports) binds
            # group.WORLD as default arguments, which would keep the group alive past close() to interpreter exit.
            import torch.distributed.nn.functional  # noqa: F401

            kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
            dist.init_process_group(backend, init_method="env://", timeout=timeout, **kwargs)
            self._cpu_group = dist.new_group(backend="gloo", timeout=timeout) if backend == "nccl" else None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on any rank."""
        if not self.topology.distributed:
            return flag
        tensor = torch.tensor([1 if flag else 0], dtype=torch.int32)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=self._cpu_group)
        return bool(tensor.item())

    def sum(self, values: Sequence[float]) -> list[float]:
        if not self.topology.distributed:
            return list(values)
        tensor = torch.tensor(list(values), dtype=torch.float64)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self._cpu_group)
        return tensor.tolist()

    def gather(self, array: np.ndarray) -> np.ndarray:
        """Concatenate every rank's 1-D float array, in rank order, on every rank."""
        if not self.topology.distributed:
            return array
        local = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64))
        sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(self.world_size)]
        dist.all_gather(sizes, torch.tensor([local.numel()], dtype=torch.int64), group=self._cpu_group)
        longest = max(int(s.item()) for s in sizes)
        padded = torch.zeros(longest, dtype=torch.float64)
        padded[: local.numel()] = local
        parts = [torch.empty(longest, dtype=torch.float64) for _ in range(self.world_size)]
        dist.all_gather(parts, padded, group=self._cpu_group)
        return np.concatenate([p[: int(s.item())].numpy() for p, s in zip(parts, sizes, strict=True)])

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.topology.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self._cpu_group)
        return box[0]

    def barrier(self) -> None:
        if self.topology.distributed:
            dist.barrier(group=self._cpu_group)

    def close(self) -> None:
        """Destroy the process groups: after the last collective (a barrier on the way out), once nothing else
        holds them (DDP does). Their backend threads are joined here, while the interpreter is still whole: a
        gloo worker that frees a tensor Python let go of takes the GIL, and doing so during finalization aborts
        the process ("terminate called without an active exception")."""
        self._cpu_group = None
        if self.topology.distributed and dist.is_initialized():
            dist.destroy_process_group()
