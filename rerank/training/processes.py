"""The processes of a training run: ranks under ``torchrun``, the device, CPU threads."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from rerank.config import TrainConfig

__all__ = ["Dist", "init_distributed", "run_threads"]


@dataclass
class Dist:
    """This process's place in the run: rank, world size, device (rank 0 is ``main``)."""

    rank: int = 0
    world: int = 1
    local_world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def init_distributed() -> Dist:
    """The process group ``torchrun`` describes (NCCL on GPUs, gloo on CPU), or one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if world <= 1:
        return Dist(device=device)
    dist = torch.distributed
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(device)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    return Dist(dist.get_rank(), dist.get_world_size(), local_world, device, owns)


@contextlib.contextmanager
def run_threads(tc: TrainConfig, dist: Dist) -> Iterator[None]:
    """torch's thread count and determinism as ``train`` says, restored on the way out.

    CPU processes under ``torchrun`` share the cores (``os.cpu_count() // local_world``).
    """
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    try:
        if tc.num_threads:
            torch.set_num_threads(tc.num_threads)
        elif dist.world > 1 and dist.device.type == "cpu":
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // dist.local_world))
        torch.use_deterministic_algorithms(tc.deterministic, warn_only=True)
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1])
