"""One way to build the `accelerate.Accelerator` of every hf-asl job (training, extraction)."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from .errors import HfAslError


def make_accelerator(cpu: bool = False, **kwargs: Any):
    """An ``Accelerator`` that sees every process of a ``torchrun`` / ``accelerate launch`` run.

    On a machine without a GPU (or other accelerator) accelerate must be told ``cpu=True``:
    otherwise under ``torchrun`` each process believes it runs alone and would do all the work
    by itself (extract every shard, train on its own). The process-group timeout is raised
    because processes wait for the slowest one at barriers, which on an unevenly resumed run can
    take long. ``kwargs`` go to ``Accelerator`` (mixed precision, trackers, ...).
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    accelerator = Accelerator(
        cpu=cpu or not torch.accelerator.is_available(),
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(hours=12))],
        **kwargs,
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        raise HfAslError(
            f"launched as {launched} processes but accelerate set up {accelerator.num_processes}: "
            "each process would work alone"
        )
    return accelerator
