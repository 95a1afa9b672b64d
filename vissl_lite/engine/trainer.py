"""The training loop in named phases: setup, one optimizer step, logging, end of epoch, finish.

Per optimizer step k: accumulation_steps micro-batches run forward (under the wrapper's
optim_context: autocast, DDP no_sync) and backward; the wrapper then sets every group's
hyperparameters for k, clips and steps. The step counter k, the RNG states and the data order
(a pure function of seed and epoch) are all a checkpoint needs to continue exactly.

Nothing is read back to the host on an ordinary step: losses are summed and a non-finite loss is
noted on the device, and both are read at log steps and before every checkpoint write, so a
checkpoint never holds state that followed a non-finite loss.
"""

import logging
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from .. import distributed
from ..data import SSLAugment, build_split, crop_plan, index_batches, micro_batches_per_epoch
from ..errors import ConfigError, TrainingError
from ..models import build_model
from ..models.activation_checkpointing import enable_activation_checkpointing
from ..models.trunks import input_channels
from ..optim.build_wrapper import build_optim_wrapper, wrapper_options
from ..optim.wrapper import OptimWrapperDict
from . import checkpoint as ckpt
from .compile import FirstStepTimer, compile_model
from .evaluation import evaluate_knn, evaluate_top1, split_features, top1_over_ranks
from .method import build_method
from .metrics import MetricsWriter
from .online_probe import OnlineLinearProbe
from .restore import freeze_trunk_epochs, init_weights, resume
from .strategy import build_strategy

log = logging.getLogger("vissl_lite")


class Trainer:
    def __init__(self, cfg, inferred, run_dir: Path, device: torch.device, env, stop):
        self.cfg, self.inferred, self.run_dir, self.device, self.env, self.stop = cfg, inferred, run_dir, device, env, stop
        self.results, self.epoch_seconds, self.preempted = {}, [], False

    # ----------------------------------------------------------------- setup

    def setup(self) -> None:
        cfg, env, device = self.cfg, self.env, self.device
        if env.is_main:
            self._write_run_header()
        channels = input_channels(cfg.MODEL.TRUNK)
        self.train_split = build_split(cfg.DATA.TRAIN, "TRAIN", channels, eval_transforms=cfg.DATA.TEST.TRANSFORMS)
        if self.train_split.images is not None:
            self.train_split.images = self.train_split.images.to(device)
            self.train_split.labels = self.train_split.labels.to(device)
        self.bs, self.accum = cfg.DATA.TRAIN.BATCHSIZE_PER_REPLICA, cfg.OPTIMIZER.accumulation_steps
        micro = micro_batches_per_epoch(self.train_split.num_samples, env.world_size, self.bs,
                                        cfg.DATA.TRAIN.DROP_LAST, "DATA.TRAIN.BATCHSIZE_PER_REPLICA")
        self.steps_per_epoch = micro // self.accum
        if self.steps_per_epoch == 0:
            raise ConfigError("OPTIMIZER.accumulation_steps", self.accum, f"at most {micro}, the micro-batches per epoch")
        self.total_steps = cfg.OPTIMIZER.num_epochs * self.steps_per_epoch

        self._build_model_and_wrappers()
        self.method = build_method(cfg, self.model, env, self.steps_per_epoch,
                                   SSLAugment(cfg.DATA.TRAIN.TRANSFORMS, channels))
        t = cfg.DATA.TRAIN.TRANSFORMS  # image files: the method's views are cut at decode time
        self.train_split.use_views(crop_plan(self.method, t), t.HFLIP_P, cfg.SEED_VALUE, env.rank, t.INTERPOLATION)
        self.aug_gen = torch.Generator(device=device).manual_seed(cfg.SEED_VALUE * 1000 + env.rank)
        self.folder = ckpt.checkpoint_folder(cfg.CHECKPOINT, self.run_dir)
        self.step = 0
        if cfg.CHECKPOINT.AUTO_RESUME:
            self.step = resume(self.folder, cfg, self.model, self.wrappers, self.method, self.aug_gen,
                               self.steps_per_epoch, self.total_steps, self.inferred.global_batch_size, env,
                               {"online_linear_probe": self.probe} if self.probe is not None else None)
            if self.step >= self.total_steps:
                log.info("training is already complete in %s (step %d of %d): evaluating only; "
                         "CHECKPOINT.AUTO_RESUME=false or another hydra.run.dir trains afresh",
                         self.folder, self.step, self.total_steps)
        self.method.set_step(self.step)
        # Compiled after the method copied the model (an EMA teacher stays eager, it runs without grad).
        self.compile_timer = (FirstStepTimer(cfg.MODEL.COMPILE_BACKEND) if cfg.MODEL.COMPILE and
                              compile_model(self.model, cfg.MODEL.COMPILE_BACKEND, device) else None)
        self._distribute()
        hooks = cfg.HOOKS
        self.metrics = (MetricsWriter(self.run_dir, hooks.TENSORBOARD_SETUP.USE_TENSORBOARD, self.step)
                        if env.is_main else None)
        needs_test = hooks.KNN_MONITOR.ENABLED or self.probe is not None or cfg.LOSS.name == "cross_entropy"
        self.test_split = build_split(cfg.DATA.TEST, "TEST", channels) if needs_test else None
        if needs_test:  # the kNN monitor, the online probe and supervised runs read both splits' labels
            self.train_split.require_labels()
            self.test_split.require_labels()
        # Device-side accumulators, read at log steps only (no host sync per step).
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.window_steps = 0
        self.first_bad_step = torch.full((), -1, dtype=torch.int64, device=device)
        self.first_bad_loss = torch.zeros((), dtype=torch.float64, device=device)

    def _write_run_header(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.merge(self.cfg, {"RUNTIME": self.inferred.as_dict()}),
                       self.run_dir / "resolved_config.yaml")
        log.info("run directory: %s", self.run_dir)
        log.info("world size %d (%s), global batch %d", self.inferred.world_size, self.inferred.world_size_source,
                 self.inferred.global_batch_size)
        for line in [line for report in self.inferred.scaling for line in report.lines()]:
            log.info("LR scaling: %s", line)
        for note in self.inferred.notes:
            log.warning(note)

    def _build_model_and_wrappers(self) -> None:
        cfg, device = self.cfg, self.device
        model = build_model(cfg.MODEL)
        if cfg.MODEL.WEIGHTS_INIT.PARAMS_FILE:
            init_weights(model, cfg.MODEL.WEIGHTS_INIT)
        if cfg.MODEL.ACTIVATION_CHECKPOINTING:  # before any sharding wraps the units
            enable_activation_checkpointing(model.trunk)
        model = convert_sync_bn(model, cfg.MODEL, device, self.env).to(device)
        # channels_last on every device: cuDNN's and oneDNN's convolutions are faster in it (training
        # steps on a 2-core CPU: ResNet-50 1.18x, simclr_folder_small's ResNet-18 1.48x, ViTs 1.0x;
        # scripts/bench_trainer.py --memory-format)
        model = model.to(memory_format=torch.channels_last)
        # Sharded (fsdp) before the optimizer is built: it steps the sharded parameters.
        self.strategy = build_strategy(cfg, self.env, device)
        self.model = model = self.strategy.shard(model)
        options = dict(wrapper_options(cfg.MODEL), device_type=device.type)
        wrappers = {"model": build_optim_wrapper(cfg.OPTIMIZER, model, self.steps_per_epoch,
                                                 non_trainable_params=cfg.MODEL.NON_TRAINABLE_PARAMS,
                                                 temp_frozen_params=cfg.MODEL.TEMP_FROZEN_PARAMS_ITER_MAP,
                                                 schedules=self.inferred.schedules.get("OPTIMIZER"), **options)}
        # the loaded trunk holds still while the heads warm up (run_epoch: eval mode too)
        freeze_trunk_epochs(wrappers["model"], model.trunk, cfg.MODEL.WEIGHTS_INIT, self.steps_per_epoch)
        probe_cfg = cfg.HOOKS.ONLINE_LINEAR_PROBE
        self.probe = None
        if probe_cfg.ENABLED:
            self.probe = OnlineLinearProbe(model.trunk.out_dim, probe_cfg.NUM_CLASSES).to(device)
            wrappers["online_linear_probe"] = build_optim_wrapper(
                probe_cfg.OPTIMIZER, self.probe, self.steps_per_epoch, device_type=device.type,
                prefix="HOOKS.ONLINE_LINEAR_PROBE.OPTIMIZER",
                schedules=self.inferred.schedules.get("HOOKS.ONLINE_LINEAR_PROBE.OPTIMIZER"))
        self.wrappers = OptimWrapperDict(**wrappers)

    def _distribute(self) -> None:
        self.ddp_model, self.ddp_probe = self.model, self.probe
        if not self.env.active:
            return
        self.ddp_model = self.strategy.wrap_model(self.model)
        if self.probe is not None:  # its own DDP (under either strategy): gradients averaged like the model's
            self.ddp_probe = self.strategy.wrap_replica(self.probe)

    # ----------------------------------------------------------------- the loop

    def run(self) -> dict:
        self.setup()
        log.info("training %d epochs x %d optimizer steps (%d micro-batches of %d per step, %d process(es)) on %s%s",
                 self.cfg.OPTIMIZER.num_epochs, self.steps_per_epoch, self.accum, self.bs, self.env.world_size,
                 self.device, f", from step {self.step}" if self.step else "")
        self.start_time = time.perf_counter()
        from tqdm.contrib.logging import logging_redirect_tqdm

        with logging_redirect_tqdm():
            for epoch in range(self.step // self.steps_per_epoch, self.cfg.OPTIMIZER.num_epochs):
                epoch_start = time.perf_counter()
                self.run_epoch(epoch)
                if self.preempted:
                    break
                self.epoch_seconds.append(time.perf_counter() - epoch_start)
                self.end_of_epoch(epoch)
        return self.finish()

    def run_epoch(self, epoch: int) -> None:
        from tqdm import tqdm

        cfg, env, hooks = self.cfg, self.env, self.cfg.HOOKS
        self.ddp_model.train()
        if epoch < cfg.MODEL.WEIGHTS_INIT.FREEZE_TRUNK_EPOCHS:
            self.model.trunk.eval()  # frozen: BatchNorm statistics kept, no dropout or drop path
        done = self.step - epoch * self.steps_per_epoch
        batches = index_batches(self.train_split.num_samples, self.bs, epoch, cfg.SEED_VALUE, env.rank,
                                env.world_size, shuffle=True, drop_last=cfg.DATA.TRAIN.DROP_LAST)
        batches = batches[done * self.accum: self.steps_per_epoch * self.accum]  # the next unseen batch onwards
        self.bar = tqdm(total=self.steps_per_epoch, initial=done, desc=f"epoch {epoch + 1}/{cfg.OPTIMIZER.num_epochs}",
                        unit="step", disable=not (env.is_main and hooks.PROGRESS_BAR), leave=False, dynamic_ncols=True)
        # The loss window may span the epoch boundary (loss_sum and window_steps carry over); the
        # throughput window restarts so that end-of-epoch evaluation is not counted as training.
        self.window_start, self.window_images = time.perf_counter(), 0
        micro_batches = []
        for images, labels in self.train_split.train_batches(batches, epoch, self.device):
            micro_batches.append((images, labels))
            if len(micro_batches) < self.accum:
                continue
            if self.compile_timer is not None:
                self.compile_timer.before_step()
            self.optimizer_step(micro_batches)
            if self.compile_timer is not None:
                self.compile_timer = self.compile_timer.after_step()
            micro_batches = []
            self.bar.update(1)
            at_log = self.step % hooks.LOG_FREQUENCY == 0 or self.step == self.total_steps
            if at_log:
                self.log_step(epoch)
            # A preemption request is read every step in one process; under torchrun ranks agree
            # at log steps (a collective per step would stall the pipeline).
            if (at_log or not env.active) and distributed.any_rank(env, self.stop.requested):
                self.save(ckpt.step_file(self.step))
                log.warning("SIGTERM: saved a checkpoint at step %d; rerun the same command to continue", self.step)
                self.preempted = True
                break
            iter_freq = cfg.CHECKPOINT.CHECKPOINT_ITER_FREQUENCY
            if iter_freq and self.step % iter_freq == 0 and self.step % self.steps_per_epoch:
                self.save(ckpt.step_file(self.step))
        self.bar.close()

    def optimizer_step(self, micro_batches) -> None:
        """accumulation_steps forward/backward passes, then the wrappers' update."""
        main, probe = self.wrappers["model"], self.wrappers["online_linear_probe"] if self.probe is not None else None
        for images, labels in micro_batches:
            with main.optim_context(self.ddp_model):
                loss, features = self.method.forward(self.ddp_model, images, labels, self.aug_gen)
            main.update_params(loss)
            if probe is not None:
                with probe.optim_context(self.ddp_probe):
                    probe_loss = OnlineLinearProbe.loss(self.ddp_probe(features), labels)
                probe.update_params(probe_loss)
            loss = loss.detach()
            newly_bad = (self.first_bad_step < 0) & ~torch.isfinite(loss)
            self.first_bad_step = torch.where(newly_bad, self.step, self.first_bad_step)
            self.first_bad_loss = torch.where(newly_bad, loss.double(), self.first_bad_loss)
            self.loss_sum += loss.double() / self.accum
            self.window_images += len(images) * self.env.world_size
        self.step += 1
        self.window_steps += 1
        self.method.after_step(self.model, self.step)

    def check_finite(self) -> None:
        """Stop, naming the first step whose loss was not finite, before anything is written."""
        bad = int(self.first_bad_step)
        if distributed.any_rank(self.env, bad >= 0):
            where = (f"at optimizer step {bad} (epoch {bad // self.steps_per_epoch + 1}, iteration "
                     f"{bad % self.steps_per_epoch + 1})" if bad >= 0 else "on another rank")
            raise TrainingError(f"loss is {float(self.first_bad_loss) if bad >= 0 else 'not finite'} {where}; "
                                "stopping without writing a checkpoint")

    def log_step(self, epoch: int) -> None:
        self.check_finite()
        loss = distributed.mean_over_ranks(self.env, float(self.loss_sum) / max(self.window_steps, 1))
        elapsed = time.perf_counter() - self.window_start
        scalars = {"epoch": epoch + 1, "loss": loss, "images_per_s": self.window_images / max(elapsed, 1e-9)}
        for name, wrapper in self.wrappers.items():
            prefix = "" if name == "model" else f"{name}/"
            for group in wrapper.param_groups:
                scalars[f"{prefix}lr/{group['name']}"] = group["lr"]
                scalars[f"{prefix}weight_decay/{group['name']}"] = group["weight_decay"]
        grad_norm = self.wrappers["model"].last_grad_norm
        if grad_norm is not None:
            scalars["grad_norm"] = float(grad_norm)
        scalars.update(self.method.scalars(self.step))
        lr = self.wrappers["model"].param_groups[0]["lr"]
        if self.metrics is not None:
            self.metrics.write(self.step, scalars)
            log.info("step %d/%d epoch %d loss %.4f lr %.4g images/s %.0f%s", self.step, self.total_steps, epoch + 1,
                     loss, lr, scalars["images_per_s"], f" grad_norm {scalars['grad_norm']:.4g}" if grad_norm is not None else "")
        postfix = {"loss": f"{loss:.4f}", "lr": f"{lr:.3g}", "img_s": f"{scalars['images_per_s']:.0f}"}
        if "online_linear_top1" in self.results:
            postfix["probe"] = f"{100 * self.results['online_linear_top1']:.1f}%"
        self.bar.set_postfix(postfix)
        self.loss_sum.zero_()
        self.window_start, self.window_images, self.window_steps = time.perf_counter(), 0, 0

    # ----------------------------------------------------------------- epochs and the end

    def end_of_epoch(self, epoch: int) -> None:
        cfg, hooks = self.cfg, self.cfg.HOOKS
        if self.train_split.files is not None:  # image files: unreadable ones met this epoch, all ranks
            unreadable = int(distributed.sum_over_ranks(self.env, self.train_split.end_epoch()))
            if unreadable and self.env.is_main:  # a sum over ranks: said once
                log.warning("epoch %d: %d unreadable images skipped (the next readable file took each one's place)",
                            epoch + 1, unreadable)
            if self.metrics is not None:
                self.metrics.write(self.step, {"epoch": epoch + 1, "unreadable_images": unreadable})
        last = epoch + 1 == cfg.OPTIMIZER.num_epochs
        knn_due = hooks.KNN_MONITOR.ENABLED and ((epoch + 1) % hooks.KNN_MONITOR.EVAL_PERIOD_EPOCHS == 0 or last)
        probe_due = self.probe is not None and (
            (epoch + 1) % hooks.ONLINE_LINEAR_PROBE.EVAL_PERIOD_EPOCHS == 0 or last)
        if knn_due or probe_due:  # every rank evaluates its shard, on rank 0's BatchNorm statistics
            self.evaluate(epoch, knn_due, probe_due)
        if last:
            self.save(ckpt.FINAL)
        elif (epoch + 1) % cfg.CHECKPOINT.CHECKPOINT_FREQUENCY == 0:
            self.save(ckpt.step_file(self.step))

    def evaluate(self, epoch: int, knn: bool, probe: bool) -> None:
        queries = split_features(self.model, self.test_split, self.cfg, self.device, self.env)
        scalars = {"epoch": epoch + 1}
        if knn:
            scalars["knn_top1"] = evaluate_knn(self.model, self.train_split, self.test_split, self.cfg, self.device,
                                               self.env, queries)
            log.info("epoch %d: kNN top-1 %.2f%% (k=%d)", epoch + 1, 100 * scalars["knn_top1"],
                     self.cfg.HOOKS.KNN_MONITOR.K)
        if probe:
            scalars["online_linear_top1"] = top1_over_ranks(self.probe.predict, *queries, self.env)
            log.info("epoch %d: online linear probe top-1 %.2f%%", epoch + 1, 100 * scalars["online_linear_top1"])
        self.results.update({k: v for k, v in scalars.items() if k != "epoch"})
        if self.metrics is not None:
            self.metrics.write(self.step, scalars)

    def save(self, name: str) -> None:
        self.check_finite()
        state = {"model": self.model.state_dict(), "optim_wrappers": self.wrappers.state_dict(),
                 "method": self.method.state_dict(), "step": self.step, "epoch": self.step // self.steps_per_epoch,
                 "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
                 "global_batch_size": self.inferred.global_batch_size, "world_size": self.env.world_size,
                 "rng": distributed.gather_object(self.env, ckpt.capture_rng(self.aug_gen)),
                 "config": OmegaConf.to_yaml(self.cfg)}
        if self.probe is not None:
            state["online_linear_probe"] = self.probe.state_dict()
        if self.strategy.sharded_checkpoints:  # every rank writes its shards
            path = ckpt.save_sharded(self.folder, state, ckpt.sharded_name(name), self.cfg.CHECKPOINT.MAX_KEEP,
                                     self.env)
            if name == ckpt.FINAL:
                state["model"] = self.strategy.full_state_dict(self.model)  # a collective
        elif self.env.is_main:
            path = ckpt.save_checkpoint(self.folder, state, name, self.cfg.CHECKPOINT.MAX_KEEP)
        if self.env.is_main:
            log.info("checkpoint: %s (step %d)", path, self.step)
            if name == ckpt.FINAL:
                log.info("trunk weights: %s", ckpt.save_trunk_weights(self.folder, state["model"], path.name))
        distributed.barrier(self.env)

    def finish(self) -> dict:
        cfg, env, results = self.cfg, self.env, self.results
        if not self.preempted and self.step == self.total_steps:  # every rank evaluates its shard
            if cfg.LOSS.name == "cross_entropy":
                results["test_top1"] = evaluate_top1(self.model, self.test_split, cfg, self.device, env)
                log.info("test top-1 %.2f%%", 100 * results["test_top1"])
                if self.metrics is not None:
                    self.metrics.write(self.step, {"test_top1": results["test_top1"]})
            if "knn_top1" not in results and cfg.HOOKS.KNN_MONITOR.ENABLED:  # resumed after the last epoch
                results["knn_top1"] = evaluate_knn(self.model, self.train_split, self.test_split, cfg, self.device, env)
        for split in (self.train_split, self.test_split):
            if split is not None:
                split.close()  # the image-file workers
        results.update(train_seconds=time.perf_counter() - self.start_time, steps=self.step, preempted=self.preempted,
                       run_dir=str(self.run_dir), epoch_seconds=self.epoch_seconds,
                       images_per_epoch=self.steps_per_epoch * self.accum * self.bs * env.world_size)
        if self.metrics is not None:
            self.metrics.close()
        if env.is_main:
            log.info("done: %s", ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                           for k, v in results.items() if k != "epoch_seconds"))
            for key, label in (("knn_top1", "kNN top-1"), ("online_linear_top1", "online linear probe top-1"),
                               ("test_top1", "test top-1")):
                if key in results:
                    print(f"final {label}: {100 * results[key]:.2f}%")
            print(f"run directory: {self.run_dir}")
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
