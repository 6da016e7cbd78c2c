"""Training on several processes with torchrun: DistributedDataParallel, gloo on CPU, NCCL
on CUDA.

Under `torchrun` (which sets WORLD_SIZE, RANK, LOCAL_RANK) every process runs the same
stage: the same seeded epoch permutation, of which each rank takes its shard of every
batch; DDP averages the gradients, so a step sees the whole global batch
(`train.optim.batch_size`). Dev is scored whole on every rank with the same weights, so
early stopping agrees; rank 0 alone writes files, checkpoints and MLflow runs.

`train.processes: N` makes `python -m stages.train` start itself under torchrun on this
machine (`launch`); several machines use torchrun's own rendezvous flags (docs/scale-out.md).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

log = logging.getLogger(__name__)

# The variables torchrun sets for each process it starts.
WORLD_ENV, RANK_ENV, LOCAL_RANK_ENV = "WORLD_SIZE", "RANK", "LOCAL_RANK"


def under_torchrun() -> bool:
    return int(os.environ.get(WORLD_ENV, "1")) > 1


def rank() -> int:
    return int(os.environ.get(RANK_ENV, "0")) if under_torchrun() else 0


def world_size() -> int:
    return int(os.environ.get(WORLD_ENV, "1"))


def is_main() -> bool:
    """Rank 0, or the only process: the one that writes files and MLflow runs."""
    return rank() == 0


def launch(processes: int, module: str, threads: int) -> None:
    """Start `python -m <module>` again under torchrun with `processes` processes on this
    machine (replacing this process, so DVC waits for it), unless already under torchrun or
    asked for one. Under torchrun, ranks > 0 log warnings only: rank 0 says it once."""
    if under_torchrun():
        if not is_main():
            logging.getLogger().setLevel(logging.WARNING)
        return
    if processes <= 1:
        return
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        module,
        *sys.argv[1:],
    ]
    log.info("train.processes: %d: %s", processes, " ".join(command[1:]))
    sys.stdout.flush()
    sys.stderr.flush()
    # base.threads per process (torchrun would otherwise set 1 and say so)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.execv(sys.executable, command)


def start(device: Any) -> None:
    """Join torchrun's process group (once per process): NCCL on CUDA, gloo otherwise."""
    import torch.distributed as dist

    if not under_torchrun() or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend)
    log.info("rank %d of %d joined the process group (%s)", rank(), world_size(), backend)


def cuda_device() -> Any:
    """This process's GPU under torchrun (one per local rank), else the default one."""
    import torch

    if not under_torchrun():
        return torch.device("cuda")
    local = int(os.environ.get(LOCAL_RANK_ENV, "0"))
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def active() -> bool:
    import torch.distributed as dist

    return under_torchrun() and dist.is_initialized()


def shard(index: Any) -> Any:
    """This rank's rows of a global batch: every world_size-th, from its rank."""
    return index[rank() :: world_size()] if active() else index


def wrap(net: Any) -> Any:
    """The network as DDP trains it (gradients averaged over ranks); itself alone.

    Built again whenever the set of trainable parameters changes (a backbone unfreezing):
    DDP registers the parameters that require gradients when it is built."""
    if not active():
        return net
    from torch.nn.parallel import DistributedDataParallel

    device = next(net.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids)


def total(*values: float) -> list[float]:
    """Each value summed over ranks (itself alone)."""
    if not active():
        return list(values)
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def any_rank(flag: bool) -> bool:
    """True where any rank says so (early stopping decided together)."""
    return total(float(flag))[0] > 0


def stop() -> None:
    """Leave the process group at the end of the stage."""
    if active():
        import torch.distributed as dist

        dist.destroy_process_group()
