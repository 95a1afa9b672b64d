"""The mapping from VISSL's keys to vissl_lite's, as data.

TABLE: VISSL key (under `config:`; `*` is one level) -> what happens to it. Keys not in the
table are kept when vissl_lite's schema has the same key, dropped otherwise (rules.walk).
VISSL_DEFAULTS: VISSL's defaults where they differ from vissl_lite's, written out when the
file leaves the key to the default (VISSL would run with them).
ADDED: vissl_lite keys VISSL has no counterpart for, set so the run does what VISSL's would.
"""

from ..optim.optimizers import OPTIMIZER_ARGUMENTS
from . import data, loss, model, optimizer
from .rules import drop, drop_if, keep, move, refuse, replace_value

ON_THE_COMMAND_LINE = "torchrun / the command line decide it"
LOGGING = "vissl_lite's logging has no such switch"
MEMORY_ONLY = "it saves memory or time only; the numbers are the same"
SAMPLER = "vissl_lite's DistributedSampler-style shuffling has no such option"

TABLE = {
    # ------------------------------------------------------------------ top level
    "VERBOSE": drop(LOGGING),
    "LOG_FREQUENCY": move("HOOKS.LOG_FREQUENCY"),
    "TEST_ONLY": drop_if([False], "vissl_lite trains and tests in one run", "vissl_lite has no test-only run"),
    "TEST_MODEL": drop("vissl_lite evaluates TEST through HOOKS (kNN monitor, online probe) and, for "
                       "cross_entropy, top-1"),
    "TEST_EVERY_NUM_EPOCH": drop("vissl_lite's evaluation periods are HOOKS.*.EVAL_PERIOD_EPOCHS"),
    "MULTI_PROCESSING_METHOD": drop(ON_THE_COMMAND_LINE),
    "REPRODUCIBILITY": drop("vissl_lite seeds everything from SEED_VALUE"),
    "MONITORING": drop(LOGGING),
    "PROFILING": drop("vissl_lite has no profiler hook (scripts/bench_trainer.py times a run)"),
    "SLURM": drop("vissl_lite does not submit jobs; launch it with torchrun"),
    "TRAINER.TRAIN_STEP_NAME": drop_if(["standard_train_step"], "vissl_lite's step is the standard one",
                                       "vissl_lite has only the standard train step"),
    "TRAINER.TASK_NAME": drop_if(["self_supervision_task"], "vissl_lite's task is the standard one",
                                 "vissl_lite has only the standard (DDP) task"),
    "EXTRACT_FEATURES": drop("vissl_lite has no feature-extraction engine"),
    "CLUSTERFIT": drop("vissl_lite has no ClusterFit engine"),
    "RANKING": drop("vissl_lite has no ranking engine"),
    "SVM": drop("vissl_lite has no SVM benchmark"),
    "SVM_FEATURES_PATH": drop("vissl_lite has no SVM benchmark"),
    "IMG_RETRIEVAL": drop("vissl_lite has no retrieval benchmark"),
    "DISTILLATION": drop("vissl_lite has no distillation engine"),
    "METERS": drop("vissl_lite logs top-1 for cross_entropy and kNN / online-probe top-1 otherwise"),
    # ------------------------------------------------------------------ HOOKS
    "HOOKS.CHECK_NAN": drop("vissl_lite always stops at a non-finite loss"),
    "HOOKS.PERF_STATS": drop(LOGGING),
    "HOOKS.MEMORY_SUMMARY": drop(LOGGING),
    "HOOKS.LOG_GPU_STATS": drop(LOGGING),
    "HOOKS.MODEL_COMPLEXITY": drop(LOGGING),
    "HOOKS.EMA_MODEL": drop("vissl_lite keeps no EMA copy of the model for evaluation"),
    "HOOKS.TENSORBOARD_SETUP.USE_TENSORBOARD": keep,
    "HOOKS.TENSORBOARD_SETUP.*": drop("vissl_lite writes its scalars to <run dir>/tb"),
    # ------------------------------------------------------------------ DATA
    "DATA.NUM_DATALOADER_WORKERS": data.num_workers,
    "DATA.PIN_MEMORY": drop(MEMORY_ONLY),
    "DATA.ENABLE_ASYNC_GPU_COPY": drop(MEMORY_ONLY),
    "DATA.DDP_BUCKET_CAP_MB": drop(MEMORY_ONLY),
    "DATA.*.DATA_SOURCES": data.data_sources,
    "DATA.*.DATASET_NAMES": data.dataset_names,
    "DATA.*.LABEL_SOURCES": drop("disk_folder's labels are its class folders; disk_filelist's are LABEL_PATHS"),
    "DATA.*.LABEL_PATHS": keep,
    "DATA.*.LABEL_TYPE": drop("the method decides whether labels are read"),
    "DATA.*.TRANSFORMS": data.transforms,
    "DATA.*.COLLATE_FUNCTION": data.collate_function,
    "DATA.*.COLLATE_FUNCTION_PARAMS": drop("vissl_lite's method makes its views itself"),
    "DATA.*.DATA_LIMIT": data.data_limit,
    "DATA.*.DATA_LIMIT_SAMPLING": drop("vissl_lite takes the first DATA_LIMIT images"),
    "DATA.*.MMAP_MODE": drop(MEMORY_ONLY),
    "DATA.*.COPY_TO_LOCAL_DISK": drop(MEMORY_ONLY),
    "DATA.*.COPY_DESTINATION_DIR": drop(MEMORY_ONLY),
    "DATA.*.USE_DEBUGGING_SAMPLER": drop(SAMPLER),
    "DATA.*.USE_STATEFUL_DISTRIBUTED_SAMPLER": drop("vissl_lite resumes mid-epoch exactly by itself"),
    "DATA.*.STRATIFIED_SAMPLER.ENABLED": drop_if([False], SAMPLER, "vissl_lite has no stratified sampler"),
    "DATA.*.STRATIFIED_SAMPLER.*": drop(SAMPLER),
    "DATA.*.POWER_LAW_SAMPLER.ENABLED": drop_if([False], SAMPLER, "vissl_lite has no power-law sampler"),
    "DATA.*.POWER_LAW_SAMPLER.*": drop(SAMPLER),
    "DATA.*.REMOVE_IMG_PATH_PREFIX": drop("vissl_lite reads image folders, not path lists"),
    "DATA.*.NEW_IMG_PATH_PREFIX": drop("vissl_lite reads image folders, not path lists"),
    "DATA.*.BASE_DATASET": drop_if(["generic_ssl"], "vissl_lite's datasets are generic",
                                   "vissl_lite has only generic datasets"),
    "DATA.*.DEFAULT_GRAY_IMG_SIZE": drop("vissl_lite skips unreadable images"),
    "DATA.*.RANDOM_SYNTHETIC_IMAGES": drop("use DATA_SOURCES [synthetic]"),
    "DATA.*.RANDOM_SYNTHETIC_LABELS": drop("use DATA_SOURCES [synthetic]"),
    "DATA.*.INPUT_KEY_NAMES": drop("vissl_lite's batches have one input"),
    "DATA.*.TARGET_KEY_NAMES": drop("vissl_lite's batches have one target"),
    "DATA.*.ENABLE_QUEUE_DATASET": drop(SAMPLER),
    "DATA.*.TRAIN_PHASES_PER_EPOCH": drop_if([1], "one phase per epoch, as in vissl_lite",
                                             "vissl_lite has one phase per epoch"),
    # ------------------------------------------------------------------ MODEL
    "MODEL.TRUNK.NAME": model.trunk_name,
    "MODEL.TRUNK.RESNETS.STANDARDIZE_CONVOLUTIONS": drop_if([False], "off, as in vissl_lite",
                                                           "vissl_lite's ResNet has plain convolutions"),
    "MODEL.TRUNK.RESNETS.GROUPS": drop_if([1], "1, as in vissl_lite", "ResNeXt (GROUPS > 1): vissl_lite has none"),
    "MODEL.TRUNK.RESNETS.WIDTH_PER_GROUP": drop_if([64], "64, as in vissl_lite", "ResNeXt widths: vissl_lite has none"),
    "MODEL.TRUNK.RESNETS.LAYER4_STRIDE": drop_if([2], "2, as in vissl_lite", "vissl_lite's layer4 has stride 2"),
    "MODEL.TRUNK.RESNETS.ZERO_INIT_RESIDUAL": drop("vissl_lite's blocks start with norm weight 1 (an "
                                                   "initialisation difference, not a schedule one)"),
    "MODEL.TRUNK.VISION_TRANSFORMERS.name": drop("a label"),
    "MODEL.TRUNK.VISION_TRANSFORMERS.QK_SCALE": drop_if([False, None], "1/sqrt(head dim), as in vissl_lite",
                                                        "vissl_lite scales attention by 1/sqrt(head dim)"),
    "MODEL.TRUNK.VISION_TRANSFORMERS.CHECKPOINT_MLP": drop(MEMORY_ONLY),
    "MODEL.TRUNK.VISION_TRANSFORMERS.CHECKPOINT_BLOCK": drop(MEMORY_ONLY),
    "MODEL.TRUNK.VISION_TRANSFORMERS.MASKED_IMAGE_MODELING": drop("vissl_lite has no masked image modelling"),
    "MODEL.HEAD.PARAMS": model.heads,
    "MODEL.HEAD.BATCHNORM_EPS": drop("vissl_lite's heads use torch's BatchNorm defaults (eps 1e-5)"),
    "MODEL.HEAD.BATCHNORM_MOMENTUM": drop("vissl_lite's heads use torch's BatchNorm defaults (momentum 0.1)"),
    "MODEL.HEAD.PARAMS_MULTIPLIER": drop("vissl_lite's heads keep torch's initialisation (no scaling)"),
    "MODEL.FEATURE_EVAL_SETTINGS": model.feature_eval_settings,
    # vissl_lite reads VISSL's checkpoints (and torchvision / timm / DINO / MoCo / SwAV files) and
    # VISSL's renaming keys, with VISSL's meaning (models/layouts.py, models/weights.py).
    "MODEL.WEIGHTS_INIT.PARAMS_FILE": keep,
    "MODEL.WEIGHTS_INIT.STATE_DICT_KEY_NAME": keep,
    "MODEL.WEIGHTS_INIT.REMOVE_PREFIX": keep,
    "MODEL.WEIGHTS_INIT.APPEND_PREFIX": keep,
    "MODEL.WEIGHTS_INIT.SKIP_LAYERS": keep,
    "MODEL.WEIGHTS_INIT.*": drop("not a vissl_lite key (MODEL.WEIGHTS_INIT takes PARAMS_FILE, FORMAT, PART, TRUNK_ONLY, "
                                 "STRICT, VISSL's renaming keys, FREEZE_TRUNK_EPOCHS)"),
    "MODEL.NON_TRAINABLE_PARAMS": model.param_names,
    "MODEL.TEMP_FROZEN_PARAMS_ITER_MAP": model.temp_frozen_params,
    "MODEL.AMP_PARAMS": model.amp_params,
    "MODEL.SYNC_BN_CONFIG": model.sync_bn_config,
    "MODEL.BASE_MODEL_NAME": drop_if(["multi_input_output_model"], "vissl_lite's model is trunk + heads",
                                     "vissl_lite's model is trunk + heads"),
    "MODEL.INPUT_TYPE": drop_if(["rgb"], "RGB, as in vissl_lite", "vissl_lite reads RGB (or 1-channel) images"),
    "MODEL.MULTI_INPUT_HEAD_MAPPING": drop_if([[]], "none", "vissl_lite's model has one input"),
    "MODEL.SINGLE_PASS_EVERY_CROP": drop("vissl_lite runs the trunk once per crop size"),
    "MODEL.CUDA_CACHE": drop(MEMORY_ONLY),
    "MODEL.ACTIVATION_CHECKPOINTING": drop(MEMORY_ONLY),
    "MODEL.SHARDED_DDP_SETUP": drop(MEMORY_ONLY),
    "MODEL.FSDP_CONFIG.AUTO_SETUP_FSDP": drop_if([False], "off", "FSDP: vissl_lite trains with DDP"),
    "MODEL.FSDP_CONFIG.*": drop("FSDP: vissl_lite trains with DDP"),
    # ------------------------------------------------------------------ LOSS
    "LOSS.name": loss.loss_name,
    "LOSS.*": loss.loss_section,
    # ------------------------------------------------------------------ OPTIMIZER
    "OPTIMIZER.name": optimizer.optimizer_name,
    "OPTIMIZER.use_zero": drop(MEMORY_ONLY),
    "OPTIMIZER.exclude_bias_and_norm": move("OPTIMIZER.lars_config.exclude_bias_and_norm"),
    "OPTIMIZER.eta": move("OPTIMIZER.lars_config.eta"),
    "OPTIMIZER.param_group_constructor": optimizer.param_group_constructor,
    "OPTIMIZER.linear_eval_heads": refuse("per-head LRs (linear_eval_heads): vissl_lite trains one head"),
    "OPTIMIZER.non_regularized_parameters": model.param_names,
    "OPTIMIZER.param_schedulers": optimizer.param_schedulers,
    # ------------------------------------------------------------------ the rest
    "CHECKPOINT.DIR": replace_value({".": ""}, "'': <run dir>/checkpoints"),
    "CHECKPOINT.CHECKPOINT_ITER_FREQUENCY": replace_value({-1: 0}, "0 is off in vissl_lite"),
    "CHECKPOINT.APPEND_DISTR_RUN_ID": drop("one run directory per experiment and overrides"),
    "CHECKPOINT.BACKEND": drop_if(["disk"], "vissl_lite writes to disk", "vissl_lite writes to disk only"),
    "CHECKPOINT.OVERWRITE_EXISTING": drop("one run directory per experiment and overrides"),
    "CHECKPOINT.LATEST_CHECKPOINT_RESUME_FILE_NUM": drop("vissl_lite resumes from its latest good checkpoint"),
    "CHECKPOINT.USE_SYMLINK_CHECKPOINT_FOR_RESUME": drop("vissl_lite resumes from its latest good checkpoint"),
    "DISTRIBUTED.BACKEND": replace_value({"nccl": None}, "null: nccl on GPUs, gloo on CPUs"),
    "DISTRIBUTED.NCCL_DEBUG": drop(ON_THE_COMMAND_LINE),
    "DISTRIBUTED.NCCL_SOCKET_NTHREADS": drop(ON_THE_COMMAND_LINE),
    "DISTRIBUTED.BROADCAST_BUFFERS": drop("DDP's default (buffers from rank 0)"),
    "DISTRIBUTED.INIT_METHOD": drop(ON_THE_COMMAND_LINE),
    "DISTRIBUTED.RUN_ID": drop(ON_THE_COMMAND_LINE),
    "DISTRIBUTED.MANUAL_GRADIENT_REDUCTION": drop(MEMORY_ONLY),
    "MACHINE.DEVICE": replace_value({"gpu": None}, "null: the GPU when there is one"),
}

# Sections read only by VISSL trunks vissl_lite does not have.
TABLE.update({f"MODEL.TRUNK.{section}": drop("read only by a trunk vissl_lite does not have")
              for section in ("RESNETS_SK", "EFFICIENT_NETS", "MOBILE_NET", "REGNET", "XCIT", "SWIN_TRANSFORMER",
                              "BEIT", "CONVNEXT", "CONVIT")})

# Keys of some optimizers only (momentum, betas, ...): kept where the file's optimizer takes them.
TABLE.update({f"OPTIMIZER.{key}": optimizer.optimizer_argument for key in OPTIMIZER_ARGUMENTS})

# (VISSL key, VISSL's default, when it applies): written out when the file leaves the key out.
VISSL_DEFAULTS = (
    ("LOSS.name", "CrossEntropyLoss", lambda conv: True),
    ("DISTRIBUTED.NUM_PROC_PER_NODE", 8, lambda conv: True),
    ("DATA.TRAIN.DROP_LAST", False, lambda conv: True),
    ("MODEL.HEAD.PARAMS", [], lambda conv: True),
    ("DATA.TRAIN.DATA_SOURCES", [], lambda conv: True),
    ("DATA.TRAIN.TRANSFORMS", [], lambda conv: True),
    ("MODEL.TRUNK.VISION_TRANSFORMERS.QKV_BIAS", False,
     lambda conv: conv.get("MODEL.TRUNK.NAME") == "vision_transformer"),
    ("OPTIMIZER.layer_wise_lr_decay.decay", 0.9,
     lambda conv: conv.get("OPTIMIZER.param_group_constructor") == "lr_decay"),
    ("LOSS.dino_loss", {}, lambda conv: conv.get("LOSS.name") == "dino_loss"),
)

# Keys beside VISSL's `config:` root: VISSL's command-line and Hydra settings.
OUTSIDE_CONFIG = "outside VISSL's config: (its engine and Hydra settings); vissl_lite's engine is engine_name"

# (vissl_lite key, value, why).
ADDED = (
    ("HOOKS.KNN_MONITOR.ENABLED", False, "VISSL has no kNN monitor; turn it on with TEST data that has labels"),
)

# The order sections are walked in: later translators read earlier results (the TRANSFORMS
# translator needs the method from LOSS).
SECTION_ORDER = ("LOSS", "DISTRIBUTED", "MODEL", "OPTIMIZER", "DATA")
