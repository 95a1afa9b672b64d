"""DISTRIBUTED.STRATEGY=fsdp on CPU (gloo), one small case of each check in
scripts/check_fsdp.py: global norms on shards, fsdp training equal to ddp's (an EMA teacher
included), per-rank memory, and a sharded checkpoint resumed bit for bit after a kill and in
one process."""

import json
import shutil

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from conftest import finish, start_cli
from vissl_lite.engine.checkpoint import (list_checkpoints, load_checkpoint_model_state, load_sharded, sharded_name,
                                         step_file)

WORLD = 2


def _init(rank, store):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=store, rank=rank, world_size=WORLD)


# ----------------------------------------------------------------------------- global norms

# Row counts below, equal to and above the world size: a shard may be empty.
SHAPES = [(5, 3), (1,), (2,), (3, 2, 2), (7,), (4, 4)]


def _whole_and_sharded(seed):
    """The same parameters with gradients twice: whole tensors, and Shard(0) DTensors."""
    from torch.distributed.tensor import Shard, distribute_tensor, init_device_mesh

    mesh = init_device_mesh("cpu", (WORLD,))
    g = torch.Generator().manual_seed(seed)
    whole, sharded = [], []
    for shape in SHAPES:
        value, grad = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        p = nn.Parameter(value.clone())
        p.grad = grad.clone()
        whole.append(p)
        q = nn.Parameter(distribute_tensor(value.clone(), mesh, [Shard(0)]))
        q.grad = distribute_tensor(grad.clone(), mesh, [Shard(0)])
        sharded.append(q)
    return whole, sharded


def _check_global_norms():
    """LARC and LARS on Shard(0) DTensors step exactly as on whole tensors (raises otherwise)."""
    from vissl_lite.optim.larc import LARC
    from vissl_lite.optim.lars import LARS

    cases = [("larc", dict(clip=False, exclude_bias_and_norm=False)),
             ("larc", dict(clip=True, exclude_bias_and_norm=True)),
             ("lars", dict(exclude_bias_and_norm=False)), ("lars", dict(exclude_bias_and_norm=True))]
    for kind, options in cases:
        for foreach in (True, False):
            whole, sharded = _whole_and_sharded(seed=7)
            optimizers = []
            for params in (whole, sharded):
                if kind == "larc":
                    inner = torch.optim.SGD(params, lr=0.5, momentum=0.9, weight_decay=0.01)
                    optimizers.append(LARC(inner, trust_coefficient=0.02, foreach=foreach, **options))
                else:
                    optimizers.append(LARS(params, lr=0.5, momentum=0.9, weight_decay=0.01, eta=0.02, foreach=foreach,
                                           **options))
            for opt in optimizers:
                opt.step()
                opt.step()
            for p, q in zip(whole, sharded):
                torch.testing.assert_close(q.full_tensor(), p.detach(), rtol=1e-6, atol=1e-7,
                                           msg=f"{kind} {options} foreach={foreach} {tuple(p.shape)}")


# ----------------------------------------------------------------------------- training, teacher, memory


def _tiny_model():
    from vissl_lite.models.model import SSLModel
    from vissl_lite.models.vit import VisionTransformer

    torch.manual_seed(0)
    trunk = VisionTransformer.from_preset("digits", input_channels=1)
    return SSLModel(trunk, nn.Sequential(nn.Linear(96, 64), nn.GELU(), nn.Linear(64, 16)))


def _train(strategy, steps=3):
    """(loss per step, whole weights of the model, whole weights of its EMA teacher, bytes of
    parameters + gradients + optimizer state this rank holds)."""
    from vissl_lite.distributed import local
    from vissl_lite.models.ema import ema_update, momentum_teacher
    from vissl_lite.optim.larc import LARC

    model = strategy.shard(_tiny_model())
    trained = strategy.wrap_model(model)
    teacher = momentum_teacher(model)
    optimizer = LARC(torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9, weight_decay=1e-4), clip=False)
    g = torch.Generator().manual_seed(100 + dist.get_rank())  # each rank its own images
    losses = []
    for _ in range(steps):
        images = torch.randn(8, 1, 8, 8, generator=g)
        with torch.no_grad():
            target = teacher(images)
        loss = (trained(images) - target).square().mean() + trained(images).std(0).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ema_update(teacher, model, 0.9)
        every = torch.stack([loss.detach()])
        dist.all_reduce(every)
        losses.append(every.item() / WORLD)
    held = sum(local(t).numel() * local(t).element_size()
               for t in [*model.parameters(), *(p.grad for p in model.parameters()),
                         *(v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v))])
    return losses, strategy.full_state_dict(model), strategy.full_state_dict(teacher), held


def _worker(rank, store, out):
    from vissl_lite.distributed import DistEnv
    from vissl_lite.engine.strategy import DDPStrategy, FSDPStrategy

    _init(rank, store)
    _check_global_norms()
    env, cpu = DistEnv(rank, rank, WORLD), torch.device("cpu")
    ddp = _train(DDPStrategy(env, cpu))
    fsdp = _train(FSDPStrategy(env, cpu, reshard_after_forward=True))
    if rank == 0:
        torch.save({"ddp": ddp, "fsdp": fsdp}, out)
    dist.destroy_process_group()


def test_fsdp_uses_global_norms_and_trains_like_ddp_with_a_teacher_on_half_the_memory(tmp_path):
    """Two processes: LARC and LARS on shards equal LARC and LARS on whole tensors (a shard's own
    norm would give every rank its own trust ratio; the formula itself is tested in
    test_larc_lars.py); then the same model trained with LARC and an EMA teacher under ddp and
    under fsdp gives the same losses, weights and teacher, holding about half the bytes."""
    mp.spawn(_worker, args=(f"file://{tmp_path}/store", str(tmp_path / "out.pt")), nprocs=WORLD, join=True)
    result = torch.load(tmp_path / "out.pt", weights_only=False)
    (ddp_losses, ddp_model, ddp_teacher, ddp_bytes), (fsdp_losses, fsdp_model, fsdp_teacher, fsdp_bytes) = \
        result["ddp"], result["fsdp"]
    assert fsdp_losses == pytest.approx(ddp_losses, rel=1e-5)
    assert ddp_losses[-1] != pytest.approx(ddp_losses[0], rel=1e-3)  # it trained
    assert fsdp_model.keys() == ddp_model.keys() and fsdp_teacher.keys() == ddp_teacher.keys()
    for name in ddp_model:
        torch.testing.assert_close(fsdp_model[name], ddp_model[name], rtol=1e-5, atol=1e-6, msg=name)
        torch.testing.assert_close(fsdp_teacher[name], ddp_teacher[name], rtol=1e-5, atol=1e-6, msg=name)
    # Dim-0 shards of 2 ranks: half of every tensor, up to one padded row of the odd-sized ones.
    assert fsdp_bytes <= 0.55 * ddp_bytes


# ----------------------------------------------------------------------------- sharded checkpoints

RUN = ["config=pretrain/dino/dino_digits", "DISTRIBUTED.STRATEGY=fsdp", "DATA.TRAIN.DATA_LIMIT=128",
       "DATA.TRAIN.BATCHSIZE_PER_REPLICA=16", "OPTIMIZER.num_epochs=2", "CHECKPOINT.CHECKPOINT_ITER_FREQUENCY=2",
       "HOOKS.PROGRESS_BAR=false", "HOOKS.LOG_FREQUENCY=1", "HOOKS.KNN_MONITOR.ENABLED=false"]


def _losses(run_dir):
    rows = map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def _tensors(tree, where=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _tensors(v, f"{where}.{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _tensors(v, f"{where}.{i}")
    elif isinstance(tree, torch.Tensor):
        yield where, tree


def _leave_as_killed_while_saving(run_dir, step: int, next_step: int) -> None:
    """What SIGKILL during the save of `next_step`'s checkpoint leaves (scripts/check_fsdp.py
    kills a real run): checkpoints up to `step`, the pointer at it, a temporary folder holding
    one rank's file and no metadata, and the metrics written so far."""
    folder = run_dir / "checkpoints"
    for path, saved_at in list_checkpoints(folder):
        if saved_at > step:
            shutil.rmtree(path)
    partial = folder / f".{sharded_name(step_file(next_step))}.tmp"
    partial.mkdir()
    (partial / "__0_0.distcp").write_bytes(b"half")
    (folder / "latest.json").write_text(json.dumps({"file": sharded_name(step_file(step)), "step": step, "epoch": 1}))
    (folder / "trunk.safetensors").unlink()
    metrics = run_dir / "metrics.jsonl"
    kept = [line for line in metrics.read_text().splitlines() if json.loads(line).get("step", 0) <= next_step]
    metrics.write_text("\n".join(kept) + "\n")


def test_sharded_checkpoint_resumes_bitwise_after_a_kill_and_in_one_process(tmp_path, cli_in_process):
    reference = tmp_path / "reference"
    finish(start_cli(reference, *RUN, nproc=2))
    # 4 steps per epoch, a step checkpoint every 2 within an epoch (steps 2 and 6): killed
    # while writing step 6's, in the second epoch.
    killed = tmp_path / "killed"
    shutil.copytree(reference, killed)
    _leave_as_killed_while_saving(killed, 2, 6)
    assert [p.name for p, _ in list_checkpoints(killed / "checkpoints")] == ["checkpoint_step00000002.dcp"]
    rerun = finish(start_cli(killed, *RUN, nproc=2))
    assert "checkpoint_step00000002.dcp at optimizer step 2 of 8" in rerun
    a = dict(_tensors(load_sharded(reference / "checkpoints" / "model_final.dcp", alone=True)))
    b = dict(_tensors(load_sharded(killed / "checkpoints" / "model_final.dcp", alone=True)))
    assert a.keys() == b.keys() and any(k.startswith(".method.teacher.") for k in a)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert _losses(killed) == _losses(reference)
    assert not list((killed / "checkpoints").glob(".*"))  # the partial folder was cleared

    # Whole weights for export / MODEL.WEIGHTS_INIT, without a process group.
    weights = load_checkpoint_model_state(reference / "checkpoints" / "model_final.dcp")
    assert weights["trunk.blocks.0.attn.qkv.weight"].shape == (288, 96)  # whole: 3 x 96 rows
    assert torch.equal(weights["trunk.cls_token"], a[".model.trunk.cls_token"])
    # vissl_lite.export reads the folder too: the trunk with timm's names, the same tensors.
    from vissl_lite.export import export
    from vissl_lite.models.weight_files import read_weights
    export(reference / "checkpoints" / "model_final.dcp", reference / "trunk.pth", "timm")
    exported = read_weights(reference / "trunk.pth")
    assert torch.equal(exported["blocks.0.attn.qkv.weight"], weights["trunk.blocks.0.attn.qkv.weight"])
    assert torch.equal(exported["cls_token"], weights["trunk.cls_token"])

    # One process (ddp, no torchrun) continues the fsdp x2 run for a third epoch.
    status, out = cli_in_process(*RUN, "DISTRIBUTED.STRATEGY=ddp", "OPTIMIZER.num_epochs=3",
                                 f"hydra.run.dir={reference}")
    assert status in (0, None), out[-2000:]
    assert "model_final.dcp at optimizer step 16 of 24" in out  # 8 steps per epoch in one process
    assert max(_losses(reference)) == 24


def test_fsdp_refuses_a_float16_loss_scaler_in_one_line(cli_in_process):
    """GradScaler's overflow check would see one shard per rank: ranks could disagree on skipping."""
    status, out = cli_in_process("DISTRIBUTED.STRATEGY=fsdp", "MODEL.AMP_PARAMS.USE_AMP=true",
                                 "MODEL.AMP_PARAMS.AMP_DTYPE=float16", "DATA.TRAIN.DATA_LIMIT=64",
                                 "DATA.TRAIN.BATCHSIZE_PER_REPLICA=32")
    assert status not in (0, None)
    assert "MODEL.AMP_PARAMS.AMP_DTYPE: got 'float16'" in out and "bfloat16 under DISTRIBUTED.STRATEGY=fsdp" in out
    assert "Traceback" not in out
