"""engine_name=train: the training loop.

Per optimizer step k: the schedules set every group's hyperparameters for k, then
accumulation_steps micro-batches run forward/backward (DDP all-reduce only on the last), then
optional gradient clipping and the optimizer step. The step counter k, the RNG states and the
data order (a pure function of seed and epoch) are all a checkpoint needs to continue exactly.
"""

import contextlib
import logging
import math
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from .. import distributed
from ..errors import ConfigError, TrainingError
from ..config.infer import Inferred
from ..data import SSLAugment, build_split, center_view, index_batches, micro_batches_per_epoch
from ..data.augment import per_channel
from ..losses import build_loss
from ..models import build_model
from ..optim import build_optimizer
from ..optim.group_scheduler import GroupScheduler
from . import checkpoint as ckpt
from .knn import extract_features, knn_top1
from .metrics import MetricsWriter

log = logging.getLogger("vissl_lite")


def pick_device(machine_cfg, local_rank: int) -> torch.device:
    wanted = machine_cfg.DEVICE
    if wanted == "gpu" and not torch.cuda.is_available():
        raise ConfigError("MACHINE.DEVICE", "gpu", "cpu or null (no CUDA device is visible here)")
    if wanted == "gpu" or (wanted is None and torch.cuda.is_available()):
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class _StopRequest:
    """SIGTERM (preemption) asks for a checkpoint at the next step boundary and a clean exit."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: no handler, no preemption support
            self._previous = None
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def train(cfg, inferred: Inferred, run_dir: str) -> dict:
    device = pick_device(cfg.MACHINE, int(os.environ.get("LOCAL_RANK", 0)))
    env = distributed.init_distributed(cfg.DISTRIBUTED, device.type)
    try:
        with _StopRequest() as stop:
            return _train(cfg, inferred, Path(run_dir), device, env, stop)
    except RuntimeError as err:
        if env.active and (isinstance(err, torch.distributed.DistError) or "timed out" in str(err).lower()):
            raise TrainingError(
                f"rank {env.rank}: a collective did not complete within DISTRIBUTED.TIMEOUT_MINUTES="
                f"{cfg.DISTRIBUTED.TIMEOUT_MINUTES} (another process died or hangs): {str(err).splitlines()[0]}; "
                f"torchrun --max-restarts with CHECKPOINT.AUTO_RESUME continues from the last checkpoint") from err
        raise
    finally:
        distributed.destroy(env)


def _train(cfg, inferred, run_dir, device, env, stop) -> dict:
    seed_everything(cfg.SEED_VALUE)
    if not env.is_main:  # rank 0 alone logs progress; the others speak up only for problems
        logging.getLogger().setLevel(logging.WARNING)
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.merge(cfg, {"RUNTIME": inferred.as_dict()}), run_dir / "resolved_config.yaml")
        log.info("run directory: %s", run_dir)
        log.info("world size %d (%s), global batch %d", inferred.world_size, inferred.world_size_source,
                 inferred.global_batch_size)
        for line in [line for report in inferred.scaling for line in report.lines()]:
            log.info("LR scaling: %s", line)
        for note in inferred.notes:
            log.warning(note)

    opt_cfg, data_cfg, hooks = cfg.OPTIMIZER, cfg.DATA, cfg.HOOKS
    channels = cfg.MODEL.TRUNK.RESNETS.INPUT_CHANNELS
    supervised = cfg.LOSS.name == "cross_entropy"
    train_split = build_split(data_cfg.TRAIN, "TRAIN", channels)
    if train_split.images is not None:
        train_split.images, train_split.labels = train_split.images.to(device), train_split.labels.to(device)
    bs, accum = data_cfg.TRAIN.BATCHSIZE_PER_REPLICA, opt_cfg.accumulation_steps
    micro = micro_batches_per_epoch(train_split.num_samples, env.world_size, bs, data_cfg.TRAIN.DROP_LAST,
                                    "DATA.TRAIN.BATCHSIZE_PER_REPLICA")
    steps_per_epoch = micro // accum
    if steps_per_epoch == 0:
        raise ConfigError("OPTIMIZER.accumulation_steps", accum, f"at most {micro}, the micro-batches per epoch")

    model = build_model(cfg.MODEL)
    if cfg.MODEL.WEIGHTS_INIT.PARAMS_FILE:
        init_weights(model, cfg.MODEL.WEIGHTS_INIT)
    model = convert_sync_bn(model, cfg.MODEL, device, env).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(opt_cfg, model, cfg.MODEL.NON_TRAINABLE_PARAMS)
    scheduler = GroupScheduler(opt_cfg, steps_per_epoch)
    loss_fn = build_loss(cfg.LOSS)
    augment = SSLAugment(data_cfg.TRAIN.TRANSFORMS, channels)
    aug_gen = torch.Generator(device=device).manual_seed(cfg.SEED_VALUE * 1000 + env.rank)
    amp = cfg.MODEL.AMP_PARAMS
    amp_dtype = torch.bfloat16 if amp.AMP_DTYPE == "bfloat16" else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=amp.USE_AMP and amp_dtype == torch.float16)

    folder = Path(cfg.CHECKPOINT.DIR) if cfg.CHECKPOINT.DIR else run_dir / "checkpoints"
    step = 0
    if cfg.CHECKPOINT.AUTO_RESUME:
        step = resume(folder, cfg, model, optimizer, scaler, aug_gen, scheduler, inferred, env)
        if step >= scheduler.total_steps:
            log.info("training is already complete in %s (step %d of %d): evaluating only; "
                     "CHECKPOINT.AUTO_RESUME=false or another hydra.run.dir trains afresh",
                     folder, step, scheduler.total_steps)

    ddp_model = model
    if env.active:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
        if hasattr(loss_fn, "gather"):
            loss_fn.gather = distributed.gather_with_grad
        if hasattr(loss_fn, "all_reduce"):
            loss_fn.all_reduce = distributed.all_reduce_with_grad

    def save(name: str) -> None:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                 "step": step, "epoch": step // steps_per_epoch, "steps_per_epoch": steps_per_epoch,
                 "total_steps": scheduler.total_steps, "global_batch_size": inferred.global_batch_size,
                 "world_size": env.world_size, "rng": distributed.gather_object(env, ckpt.capture_rng(aug_gen)),
                 "config": OmegaConf.to_yaml(cfg)}
        if env.is_main:
            path = ckpt.save_checkpoint(folder, state, name, cfg.CHECKPOINT.MAX_KEEP)
            log.info("checkpoint: %s (step %d)", path, step)
        distributed.barrier(env)

    metrics = MetricsWriter(run_dir, hooks.TENSORBOARD_SETUP.USE_TENSORBOARD) if env.is_main else None
    test_split = build_split(data_cfg.TEST, "TEST", channels) if (hooks.KNN_MONITOR.ENABLED or supervised) else None
    params = [p for g in optimizer.param_groups for p in g["params"]]
    clip, num_epochs = cfg.MODEL.GRAD_CLIP, opt_cfg.num_epochs
    results, epoch_seconds, preempted = {}, [], False
    log.info("training %d epochs x %d optimizer steps (%d micro-batches of %d per step, %d process(es)) on %s%s",
             num_epochs, steps_per_epoch, accum, bs, env.world_size, device,
             f", from step {step}" if step else "")
    start_time = time.perf_counter()

    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        for epoch in range(step // steps_per_epoch, num_epochs):
            epoch_start = time.perf_counter()
            ddp_model.train()
            done_in_epoch = step - epoch * steps_per_epoch
            batches = index_batches(train_split.num_samples, bs, epoch, cfg.SEED_VALUE, env.rank, env.world_size,
                                    shuffle=True, drop_last=data_cfg.TRAIN.DROP_LAST)
            batches = batches[done_in_epoch * accum: steps_per_epoch * accum]  # the next unseen batch onwards
            bar = tqdm(total=steps_per_epoch, initial=done_in_epoch, desc=f"epoch {epoch + 1}/{num_epochs}",
                       unit="step", disable=not (env.is_main and hooks.PROGRESS_BAR), leave=False, dynamic_ncols=True)
            window_start, window_images, step_loss = time.perf_counter(), 0, 0.0
            for i, (images, labels) in enumerate(train_split.batches(batches, device)):
                if i % accum == 0:
                    scheduler.apply(optimizer, step)
                if supervised:
                    inputs = augment(images, aug_gen)
                else:
                    inputs = torch.cat([augment(images, aug_gen), augment(images, aug_gen)])
                if device.type == "cuda":
                    inputs = inputs.contiguous(memory_format=torch.channels_last)
                last_micro = (i + 1) % accum == 0
                sync = contextlib.nullcontext() if (last_micro or not env.active) else ddp_model.no_sync()
                with sync:
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp.USE_AMP):
                        loss = loss_fn(ddp_model(inputs), labels)
                    if i % accum == 0:
                        # Drop the last step's gradients only now, after the forward: the
                        # allocator hands their memory straight to this backward.
                        optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss / accum).backward()
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise TrainingError(f"loss is {loss_value} at optimizer step {step} (epoch {epoch + 1}, "
                                        f"iteration {i // accum + done_in_epoch + 1}); stopping without "
                                        f"writing a checkpoint")
                step_loss += loss_value / accum
                window_images += len(images) * env.world_size
                if not last_micro:
                    continue
                grad_norm = None
                if clip.USE_GRAD_CLIP:
                    scaler.unscale_(optimizer)
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip.MAX_NORM, clip.NORM_TYPE))
                scaler.step(optimizer)
                scaler.update()
                step += 1
                bar.update(1)
                if step % hooks.LOG_FREQUENCY == 0 or step == scheduler.total_steps:
                    step_loss = distributed.mean_over_ranks(env, step_loss)
                    elapsed = time.perf_counter() - window_start
                    scalars = {"epoch": epoch + 1, "loss": step_loss, "images_per_s": window_images / max(elapsed, 1e-9)}
                    for g in optimizer.param_groups:
                        scalars[f"lr/{g['name']}"] = g["lr"]
                        scalars[f"weight_decay/{g['name']}"] = g["weight_decay"]
                    if grad_norm is not None:
                        scalars["grad_norm"] = grad_norm
                    if metrics is not None:
                        metrics.write(step, scalars)
                        log.info("step %d/%d epoch %d loss %.4f lr %.4g images/s %.0f%s", step, scheduler.total_steps,
                                 epoch + 1, step_loss, optimizer.param_groups[0]["lr"], scalars["images_per_s"],
                                 f" grad_norm {grad_norm:.4g}" if grad_norm is not None else "")
                    bar.set_postfix(loss=f"{step_loss:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.3g}",
                                    img_s=f"{scalars['images_per_s']:.0f}")
                    window_start, window_images = time.perf_counter(), 0
                step_loss = 0.0
                if distributed.any_rank(env, stop.requested):
                    save(ckpt.step_file(step))
                    log.warning("SIGTERM: saved a checkpoint at step %d; rerun the same command to continue", step)
                    preempted = True
                    break
                iter_freq = cfg.CHECKPOINT.CHECKPOINT_ITER_FREQUENCY
                if iter_freq and step % iter_freq == 0 and step % steps_per_epoch:
                    save(ckpt.step_file(step))
            bar.close()
            if preempted:
                break
            epoch_seconds.append(time.perf_counter() - epoch_start)
            if train_split.skipped:
                log.warning("skipped %d unreadable images so far", train_split.skipped)
                if train_split.skipped >= train_split.num_samples:
                    raise ConfigError("DATA.TRAIN.DATA_PATHS", list(data_cfg.TRAIN.DATA_PATHS),
                                      "a folder with readable images", "every image failed to decode")
            last_epoch = epoch + 1 == num_epochs
            knn_due = (epoch + 1) % hooks.KNN_MONITOR.EVAL_PERIOD_EPOCHS == 0 or last_epoch
            if hooks.KNN_MONITOR.ENABLED and env.is_main and knn_due:  # rank 0's BatchNorm statistics
                results["knn_top1"] = evaluate_knn(model, train_split, test_split, cfg, device)
                log.info("epoch %d: kNN top-1 %.2f%% (k=%d)", epoch + 1, 100 * results["knn_top1"], hooks.KNN_MONITOR.K)
                if metrics is not None:
                    metrics.write(step, {"epoch": epoch + 1, "knn_top1": results["knn_top1"]})
            if last_epoch:
                save(ckpt.FINAL)
            elif (epoch + 1) % cfg.CHECKPOINT.CHECKPOINT_FREQUENCY == 0:
                save(ckpt.step_file(step))

    if not preempted and step == scheduler.total_steps and env.is_main:
        if supervised:
            results["test_top1"] = evaluate_top1(model, test_split, cfg, device)
            log.info("test top-1 %.2f%%", 100 * results["test_top1"])
            if metrics is not None:
                metrics.write(step, {"test_top1": results["test_top1"]})
        if "knn_top1" not in results and hooks.KNN_MONITOR.ENABLED:  # resumed after the last epoch
            results["knn_top1"] = evaluate_knn(model, train_split, test_split, cfg, device)
    results.update(train_seconds=time.perf_counter() - start_time, steps=step, preempted=preempted,
                   run_dir=str(run_dir), epoch_seconds=epoch_seconds,
                   images_per_epoch=steps_per_epoch * accum * bs * env.world_size)
    if metrics is not None:
        metrics.close()
    if env.is_main:
        log.info("done: %s", ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                       for k, v in results.items() if k != "epoch_seconds"))
        for key, label in (("knn_top1", "kNN top-1"), ("test_top1", "test top-1")):
            if key in results:
                print(f"final {label}: {100 * results[key]:.2f}%")
        print(f"run directory: {run_dir}")
    return results


def convert_sync_bn(model, model_cfg, device, env):
    """SyncBatchNorm needs CUDA devices under DDP; say so rather than fail inside a forward."""
    wants_sync = model_cfg.SYNC_BN_CONFIG.CONVERT_BN_TO_SYNC_BN or model_cfg.TRUNK.RESNETS.NORM == "SyncBatchNorm"
    if wants_sync and env.active and device.type != "cuda":
        key = ("MODEL.SYNC_BN_CONFIG.CONVERT_BN_TO_SYNC_BN" if model_cfg.SYNC_BN_CONFIG.CONVERT_BN_TO_SYNC_BN
               else "MODEL.TRUNK.RESNETS.NORM")
        raise ConfigError(key, True if "CONVERT" in key else "SyncBatchNorm",
                          "false / BatchNorm or GroupNorm on CPU", "SyncBatchNorm runs on CUDA devices only")
    if model_cfg.SYNC_BN_CONFIG.CONVERT_BN_TO_SYNC_BN and env.active:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def resume(folder, cfg, model, optimizer, scaler, aug_gen, scheduler, inferred, env) -> int:
    """Load the latest good checkpoint in `folder` into the run; return the step to continue at."""
    found = ckpt.load_latest(folder)
    if found is None:
        return 0
    state, path = found
    ckpt.load_model_weights(model, state["model"], str(path), strict=not cfg.CHECKPOINT.LOAD_WEIGHTS_ONLY)
    if not cfg.CHECKPOINT.LOAD_WEIGHTS_ONLY:
        ckpt.check_optimizer_layout(state["optimizer"], optimizer, str(path))
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
    step = state["step"]
    if (state["steps_per_epoch"], state["world_size"]) == (scheduler.steps_per_epoch, env.world_size):
        ckpt.restore_rng(state["rng"][env.rank], aug_gen)
    else:
        # Another world size or batch: keep the position in epochs, i.e. the fraction of
        # training when num_epochs is unchanged. The data order continues at that epoch point.
        step = round(state["step"] * scheduler.steps_per_epoch / state["steps_per_epoch"])
        log.warning("resuming %s with a different shape: step %d of %d (world size %d, global batch %d) -> "
                    "step %d of %d (world size %d, global batch %d); LR scaling is recomputed for the new batch",
                    path, state["step"], state["total_steps"], state["world_size"], state["global_batch_size"],
                    step, scheduler.total_steps, env.world_size, inferred.global_batch_size)
    log.info("resumed from %s at optimizer step %d of %d", path, step, scheduler.total_steps)
    return step


def init_weights(model, weights_cfg) -> None:
    """MODEL.WEIGHTS_INIT: start from a checkpoint's model weights (the trunk only, or all)."""
    path = Path(weights_cfg.PARAMS_FILE)
    if not path.is_file():
        raise ConfigError("MODEL.WEIGHTS_INIT.PARAMS_FILE", str(path), "an existing vissl_lite checkpoint file")
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)["model"]
    except Exception as err:
        raise ConfigError("MODEL.WEIGHTS_INIT.PARAMS_FILE", str(path), "a readable vissl_lite checkpoint",
                          f"{type(err).__name__}: {err}") from None
    if weights_cfg.TRUNK_ONLY:
        trunk = {k[len("trunk."):]: v for k, v in weights.items() if k.startswith("trunk.")}
        ckpt.load_model_weights(model.trunk, trunk, f"{path} (trunk)", weights_cfg.STRICT)
    else:
        ckpt.load_model_weights(model, weights, str(path), weights_cfg.STRICT)
    log.info("initialised %s from %s", "the trunk" if weights_cfg.TRUNK_ONLY else "the model", path)


def _eval_normalisation(cfg):
    t, channels = cfg.DATA.TEST.TRANSFORMS, cfg.MODEL.TRUNK.RESNETS.INPUT_CHANNELS
    return (t, per_channel(t.MEAN, channels, "DATA.TEST.TRANSFORMS.MEAN"),
            per_channel(t.STD, channels, "DATA.TEST.TRANSFORMS.STD"))


def evaluate_knn(model, train_split, test_split, cfg, device) -> float:
    knn = cfg.HOOKS.KNN_MONITOR
    t, mean, std = _eval_normalisation(cfg)
    bs = cfg.DATA.TEST.BATCHSIZE_PER_REPLICA
    bank, bank_labels = extract_features(model.trunk, train_split, t, mean, std, device, bs)
    queries, query_labels = extract_features(model.trunk, test_split, t, mean, std, device, bs)
    return knn_top1(bank, bank_labels, queries, query_labels, knn.K, knn.TEMPERATURE)


@torch.no_grad()
def evaluate_top1(model, test_split, cfg, device) -> float:
    """Top-1 of the model's logits on the TEST split's evaluation view (supervised runs)."""
    t, mean, std = _eval_normalisation(cfg)
    was_training = model.training
    model.eval()
    correct = 0
    batches = list(torch.arange(test_split.num_samples).split(cfg.DATA.TEST.BATCHSIZE_PER_REPLICA))
    for images, labels in test_split.batches(batches, device):
        correct += (model(center_view(images, t.CROP_SIZE, mean, std)).argmax(1) == labels).sum().item()
    model.train(was_training)
    return correct / test_split.num_samples
