"""How the trained model is spread over processes (DISTRIBUTED.STRATEGY), and the questions the
rest of the engine asks instead of assuming a replica.

    ddp   every process holds the whole model; DistributedDataParallel averages gradients;
          checkpoints are single files written by rank 0.
    fsdp  FSDP2 (torch.distributed.fsdp.fully_shard) per ViT block / ResNet stage, on the
          trunk and on the root: every parameter, gradient and optimizer state is a DTensor
          holding 1/world of the rows (dim-0 shards), gathered for each unit's forward and
          backward, gradients reduce-scattered; checkpoints are torch.distributed.checkpoint
          folders, one file per rank. With MODEL.AMP_PARAMS.USE_AMP the gathered parameters are
          bfloat16 and the gradient reduction float32 (MixedPrecisionPolicy); the sharded
          master copy stays float32.

What stays the same under fsdp: parameter names (fully_shard keeps the module tree), hence
parameter groups and paramwise rules; global norms (LARC and LARS sum the shards' squared norms
over the processes, clipping is torch's clip_grad_norm_ over the DTensors); EMA teachers and key
encoders (sharded copies, updated shard by shard); buffers (rank 0's are broadcast before every
forward, as DDP does).
"""

import copy
import logging
from typing import List

import torch
import torch.distributed as dist
from torch import nn

from .. import distributed
from ..errors import ConfigError
from ..models.resnet import ResNet
from ..models.vit import Block

log = logging.getLogger("vissl_lite")


class DDPStrategy:
    name = "ddp"
    sharded_checkpoints = False

    def __init__(self, env, device: torch.device):
        self.env, self.device = env, device

    def shard(self, model: nn.Module) -> nn.Module:
        """Called once on the built model, before its optimizer: a replica needs nothing."""
        return model

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """The module the training loop calls (gradient averaging over processes)."""
        return self.wrap_replica(model)

    def wrap_replica(self, module: nn.Module) -> nn.Module:
        """A small module kept whole on every process under either strategy (the online probe)."""
        if not self.env.active:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def full_state_dict(self, module: nn.Module) -> dict:
        """The module's state with whole tensors, on every process (a collective under fsdp)."""
        return module.state_dict()


class FSDPStrategy(DDPStrategy):
    name = "fsdp"
    sharded_checkpoints = True

    def __init__(self, env, device: torch.device, reshard_after_forward: bool, param_dtype=None):
        super().__init__(env, device)
        self.reshard_after_forward, self.param_dtype = reshard_after_forward, param_dtype

    def shard(self, model: nn.Module) -> nn.Module:
        if not dist.is_initialized():
            log.info("DISTRIBUTED.STRATEGY=fsdp in one process without torchrun: the model stays whole; "
                     "checkpoints are sharded folders all the same")
            return model
        skeleton = meta_copy(model)  # the architecture, for sharded copies
        self._fully_shard(model)
        distributed.register_copier(model, lambda m: self._sharded_copy(skeleton, m))
        if self.env.active and any(True for _ in model.buffers()):
            # DDP's broadcast_buffers: each forward starts from rank 0's buffers (BatchNorm statistics)
            model.register_forward_pre_hook(lambda module, _inputs: distributed.broadcast_buffers(self.env, module))
        return model

    def wrap_model(self, model: nn.Module) -> nn.Module:
        return model  # fully_shard changed the module in place; its hooks do the communication

    def full_state_dict(self, module: nn.Module) -> dict:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        if not dist.is_initialized():
            return module.state_dict()
        return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True))

    def _fully_shard(self, module: nn.Module) -> None:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        policy = (MixedPrecisionPolicy(param_dtype=self.param_dtype, reduce_dtype=torch.float32)
                  if self.param_dtype is not None else MixedPrecisionPolicy())
        if self.param_dtype is not None:
            # BatchNorm keeps float32 weights beside its float32 running statistics (the kernels
            # refuse a mix); each is a small unit of its own, as autocast keeps it under ddp. Its
            # output is cast back, for the next layer's weights outside autocast (evaluation).
            norm_policy = MixedPrecisionPolicy(param_dtype=torch.float32, reduce_dtype=torch.float32,
                                               output_dtype=self.param_dtype)
            for norm in module.modules():
                if isinstance(norm, nn.modules.batchnorm._BatchNorm) and any(True for _ in norm.parameters()):
                    fully_shard(norm, reshard_after_forward=self.reshard_after_forward, mp_policy=norm_policy)
        for unit in shard_units(module):
            fully_shard(unit, reshard_after_forward=self.reshard_after_forward, mp_policy=policy)
        # The trunk is a unit of its own (its stem, embeddings and final norm): evaluation calls
        # model.trunk alone, which must gather what it uses without the root.
        trunk = getattr(module, "trunk", None)
        if isinstance(trunk, nn.Module) and any(True for _ in trunk.parameters()):
            fully_shard(trunk, reshard_after_forward=self.reshard_after_forward, mp_policy=policy)
            trunk.register_forward_hook(_reshard_after_no_grad_forward)
        # The root holds what is left (the heads); they are needed first in the backward, so
        # they stay gathered between forward and backward.
        fully_shard(module, reshard_after_forward=False, mp_policy=policy)
        # A forward without a backward (a teacher, an evaluation) would leave units gathered
        # that are not set to reshard, and the next forward would reuse the gathered copy of
        # weights the optimizer or the EMA has since changed: reshard everything at its end.
        module.register_forward_hook(_reshard_after_no_grad_forward)

    def _sharded_copy(self, skeleton: nn.Module, model: nn.Module) -> nn.Module:
        """A fresh module of the skeleton's architecture, sharded like `model`, holding its
        current shards (copied locally: the same placements, no communication)."""
        clone = copy.deepcopy(skeleton).to_empty(device=self.device)
        self._fully_shard(clone)
        with torch.no_grad():
            for mine, theirs in zip(clone.parameters(), model.parameters()):
                distributed.local(mine).copy_(distributed.local(theirs))
                mine.requires_grad_(theirs.requires_grad)
            for mine, theirs in zip(clone.buffers(), model.buffers()):
                mine.copy_(theirs)
        return clone


def meta_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` whose parameters and buffers are on the meta device: the architecture
    without storage, made without a transient second copy of the weights."""
    memo = {}
    for t in (*model.parameters(), *model.buffers()):
        meta = t.detach().to("meta")
        memo[id(t)] = nn.Parameter(meta, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else meta
    return copy.deepcopy(model, memo)


def shard_units(model: nn.Module) -> List[nn.Module]:
    """The modules fully_shard wraps on their own, outermost last: every ViT block and every
    ResNet stage (layer1..layer4); the rest belongs to the root."""
    units = []
    for module in model.modules():
        if isinstance(module, Block):
            units.append(module)
        elif isinstance(module, ResNet):
            units.extend(getattr(module, f"layer{i}") for i in range(1, 5))
    return units


def _reshard_after_no_grad_forward(module: nn.Module, _inputs, _output) -> None:
    from torch.distributed.fsdp import FSDPModule

    if not torch.is_grad_enabled():
        for m in module.modules():
            if isinstance(m, FSDPModule):
                m.reshard()


def build_strategy(cfg, env, device: torch.device) -> DDPStrategy:
    """DISTRIBUTED.STRATEGY as a strategy object."""
    if cfg.DISTRIBUTED.STRATEGY == "ddp":
        return DDPStrategy(env, device)
    amp = cfg.MODEL.AMP_PARAMS
    if amp.USE_AMP and amp.AMP_DTYPE == "float16":
        # GradScaler's inf check would run per shard: ranks could disagree on skipping a step.
        raise ConfigError("MODEL.AMP_PARAMS.AMP_DTYPE", "float16", "bfloat16 under DISTRIBUTED.STRATEGY=fsdp",
                          "a float16 loss scaler needs every rank's overflow check, fsdp shards the gradients")
    if cfg.MODEL.SYNC_BN_CONFIG.CONVERT_BN_TO_SYNC_BN:
        raise ConfigError("MODEL.SYNC_BN_CONFIG.CONVERT_BN_TO_SYNC_BN", True,
                          "false under DISTRIBUTED.STRATEGY=fsdp", "use DISTRIBUTED.STRATEGY=ddp for SyncBatchNorm")
    return FSDPStrategy(env, device, cfg.DISTRIBUTED.FSDP.RESHARD_AFTER_FORWARD,
                        getattr(torch, amp.AMP_DTYPE) if amp.USE_AMP else None)
