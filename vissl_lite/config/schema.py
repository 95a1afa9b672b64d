"""The typed schema of every config section: the single source of keys, defaults and docs.

Each field carries its default, its constraints and a one-line `doc` (see `spec`). Hydra
composes experiments on top of it (it is stored in Hydra's ConfigStore as `schema`),
`validate.py` checks every key with one walker that names the full key path, and
`python -m vissl_lite.config.reference` writes docs/config_reference.md from it.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


def spec(default=None, *, factory=None, doc: str = "", choices=None, ge=None, gt=None, le=None, lt=None,
         length=None, finite: bool = True):
    """A dataclass field with its one-line documentation and optional constraints.

    Constraints apply to the value, or to every element of a list value; None passes them.
    `length` is the exact length of a list value (an int) or its allowed lengths (a tuple).
    Floats must be finite unless `finite=False`.
    """
    meta = {k: v for k, v in dict(choices=choices, ge=ge, gt=gt, le=le, lt=lt, length=length).items()
            if v is not None}
    meta.update(doc=doc, finite=finite)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _list(*values):
    return lambda: list(values)


# ----------------------------------------------------------------------------- OPTIMIZER


@dataclass
class AutoLRScalingConfig:
    auto_scale: bool = spec(False, doc="scale the schedule so its peak = base_value x factor")
    base_value: float = spec(0.1, gt=0, doc="peak LR at base_lr_batch_size")
    base_lr_batch_size: int = spec(256, gt=0, doc="batch size base_value is meant for")
    scaling_type: str = spec("linear", choices=("linear", "sqrt"), doc="linear (factor = global / base batch) | sqrt")


@dataclass
class ScheduleConfig:
    # Types only: None means "not set", and build_param_scheduler checks what each schedule
    # type needs, so the same checks serve configs and plain dicts from users' scripts.
    name: Optional[str] = spec(None, doc="the schedule type (see above)")
    update_interval: Optional[str] = spec(None, doc="step | epoch; null: the type's default (ClassyVision's)")
    values: List[float] = spec(factory=list, doc="multistep, step: one value per piece")
    milestones: List[int] = spec(factory=list, doc="multistep: epochs where the next value starts")
    start_value: Optional[float] = spec(None, doc="linear, cosine, inverse_sqrt, cosine_warm_restart")
    end_value: Optional[float] = spec(None, doc="linear, cosine, cosine_warm_restart")
    value: Optional[float] = spec(None, doc="constant")
    base_value: Optional[float] = spec(None, doc="polynomial, step_with_fixed_gamma")
    power: Optional[float] = spec(None, doc="polynomial")
    gamma: Optional[float] = spec(None, doc="step_with_fixed_gamma: factor per decay (> 0)")
    num_decays: Optional[int] = spec(None, doc="step_with_fixed_gamma: number of decays (> 0)")
    schedulers: List["ScheduleConfig"] = spec(factory=list, doc="composite: child schedules (same fields, nesting allowed)")
    lengths: List[float] = spec(factory=list, doc="composite: fraction of training per child, summing to 1")
    interval_scaling: List[str] = spec(factory=list, doc="composite: rescaled | fixed per child; empty: all rescaled")
    restart_interval_length: Optional[float] = spec(None, doc="cosine_warm_restart: fraction of training per wave, in (0, 1]")
    wave_type: str = spec("half", doc="cosine_warm_restart: half | full")
    lr_multiplier: float = spec(1.0, doc="cosine_warm_restart: peak x lr_multiplier at each restart")
    is_adaptive: bool = spec(False, doc="cosine_warm_restart: restart peaks follow the single cosine")
    warmup_interval_length: Optional[float] = spec(None, doc="inverse_sqrt: where the decay reaches start_value, in [0, 1)")
    auto_lr_scaling: AutoLRScalingConfig = spec(factory=AutoLRScalingConfig)


def _multistep_lr():
    return ScheduleConfig(name="multistep", values=[0.1, 0.01, 0.001], milestones=[30, 60])


@dataclass
class ParamSchedulersConfig:
    lr: ScheduleConfig = spec(factory=_multistep_lr)
    # Follows `lr` unless OPTIMIZER.head_optimizer_params.use_different_lr.
    lr_head: ScheduleConfig = spec(factory=_multistep_lr, doc="head groups' LR, used when use_different_lr (else = lr)")
    # Optional schedules: name null means "not scheduled, use the OPTIMIZER value".
    weight_decay: ScheduleConfig = spec(factory=ScheduleConfig, doc="optional: name null keeps OPTIMIZER.weight_decay constant")
    weight_decay_head: ScheduleConfig = spec(factory=ScheduleConfig, doc="optional head weight-decay schedule, used when use_different_wd")
    momentum: ScheduleConfig = spec(factory=ScheduleConfig, doc="optional: SGD / RMSprop / LARS momentum or Adam's beta1")


@dataclass
class HeadOptimizerConfig:
    use_different_lr: bool = spec(False, doc="true: head groups follow param_schedulers.lr_head instead of lr")
    use_different_wd: bool = spec(False, doc="true: head groups use the weight_decay below")
    weight_decay: float = spec(1e-4, ge=0, doc="head weight decay when use_different_wd (else copied from weight_decay)")


@dataclass
class LARCConfig:
    clip: bool = spec(False, doc="LARC clipping mode: adaptive LR = min(local LR / LR, 1)")
    eps: float = spec(1e-8, ge=0, doc="added to the LARC denominator (>= 0)")
    trust_coefficient: float = spec(1e-3, ge=0, doc="LARC trust coefficient (>= 0)")
    exclude_bias_and_norm: bool = spec(False, doc="leave 1-D parameters (biases, norm weights) unadapted")


@dataclass
class LARSConfig:
    eta: float = spec(1e-3, ge=0, doc="lars trust coefficient (>= 0)")
    exclude_bias_and_norm: bool = spec(False, doc="lars: leave 1-D parameters unadapted")


@dataclass
class ParamMultConfig:
    lr_mult: float = spec(1.0, ge=0)
    decay_mult: float = spec(1.0, ge=0)


@dataclass
class ParamwiseConfig:
    custom_keys: Dict[str, ParamMultConfig] = spec(factory=dict, doc="{name substring: {lr_mult: 1.0, decay_mult: 1.0}}; longest match wins")


@dataclass
class LayerWiseLRDecayConfig:
    decay: float = spec(1.0, gt=0, le=1, doc="lr_decay: LR x decay^(last depth - depth); stem 0, layerN N, heads last")


@dataclass
class OptimizerConfig:
    name: str = spec("sgd", doc="sgd | adam | adamw | rmsprop | lars | any name added with register_optimizer")
    weight_decay: float = spec(1e-4, ge=0, doc="trunk weight decay (>= 0)")
    momentum: float = spec(0.9, ge=0, lt=1, doc="sgd / rmsprop / lars momentum, in [0, 1)")
    nesterov: bool = spec(False, doc="sgd only")
    betas: List[float] = spec(factory=_list(0.9, 0.999), ge=0, lt=1, length=2, doc="adam / adamw")
    eps: float = spec(1e-8, ge=0, doc="adam / adamw / rmsprop")
    amsgrad: bool = spec(False, doc="adam / adamw")
    num_epochs: int = spec(90, gt=0, doc="length of training; schedules span exactly this")
    accumulation_steps: int = spec(1, gt=0, doc="micro-batches per optimizer step; counts in the global batch")
    regularize_bn: bool = spec(False, doc="false: weight and bias of every norm layer get weight decay 0")
    regularize_bias: bool = spec(True, doc="false: every bias gets weight decay 0")
    non_regularized_parameters: List[str] = spec(factory=list, doc="substrings of parameter names that get weight decay 0 (their LR is kept)")
    head_optimizer_params: HeadOptimizerConfig = spec(factory=HeadOptimizerConfig)
    use_larc: bool = spec(False, doc="wrap the optimizer in LARC")
    larc_config: LARCConfig = spec(factory=LARCConfig)
    lars_config: LARSConfig = spec(factory=LARSConfig)
    construct_single_param_group_only: bool = spec(False, doc="one group of all trainable parameters (ignores the options above)")
    param_group_constructor: str = spec("default", choices=("default", "lr_decay"), doc="default | lr_decay (layer-wise LR decay)")
    layer_wise_lr_decay: LayerWiseLRDecayConfig = spec(factory=LayerWiseLRDecayConfig)
    paramwise: ParamwiseConfig = spec(factory=ParamwiseConfig)
    param_schedulers: ParamSchedulersConfig = spec(factory=ParamSchedulersConfig)


# ----------------------------------------------------------------------------- DATA


@dataclass
class TransformsConfig:
    CROP_SIZE: int = spec(224, gt=0, doc="random resized crop output side")
    CROP_SCALE: List[float] = spec(factory=_list(0.08, 1.0), gt=0, le=1, length=2, doc="crop area range, fraction of the image")
    HFLIP_P: float = spec(0.5, ge=0, le=1, doc="horizontal flip probability")
    COLOR_DISTORTION_STRENGTH: float = spec(1.0, ge=0, doc="SimCLR colour jitter strength s (0.8s, 0.8s, 0.8s, 0.2s)")
    COLOR_JITTER_P: float = spec(0.8, ge=0, le=1, doc="probability of colour jitter")
    GRAYSCALE_P: float = spec(0.2, ge=0, le=1, doc="probability of grayscale")
    BLUR_P: float = spec(0.5, ge=0, le=1, doc="probability of Gaussian blur")
    BLUR_SIGMA: List[float] = spec(factory=_list(0.1, 2.0), gt=0, length=2, doc="blur sigma range, in pixels at CROP_SIZE 224 (scaled with it)")
    SOLARIZE_P: float = spec(0.0, ge=0, le=1, doc="probability of solarization")
    MEAN: List[float] = spec(factory=_list(0.485, 0.456, 0.406), doc="normalisation mean per channel")
    STD: List[float] = spec(factory=_list(0.229, 0.224, 0.225), gt=0, doc="normalisation std per channel")


@dataclass
class DataSplitConfig:
    DATA_SOURCES: List[str] = spec(factory=_list("digits"), choices=("digits", "synthetic", "disk_folder"), doc="digits (sklearn's 8x8 digits, bundled) | synthetic | disk_folder")
    DATA_PATHS: List[str] = spec(factory=list, doc="disk_folder: one root per source, laid out root/class/image")
    BATCHSIZE_PER_REPLICA: int = spec(256, gt=0, doc="images per process per micro-step")
    NUM_DATALOADER_WORKERS: int = spec(0, ge=0, doc="DataLoader worker processes (disk_folder decoding)")
    DROP_LAST: bool = spec(True, doc="drop the last incomplete batch")
    DATA_LIMIT: int = spec(-1, ge=-1, doc="use only the first N images (-1: all)")
    NUM_SAMPLES_SYNTHETIC: int = spec(1024, gt=0, doc="synthetic: number of images")
    TRANSFORMS: TransformsConfig = spec(factory=TransformsConfig, doc="SSL augmentation, two views per image, batched on the device")


def _test_split():
    return DataSplitConfig(DROP_LAST=False)


@dataclass
class DataConfig:
    TRAIN: DataSplitConfig = spec(factory=DataSplitConfig)
    TEST: DataSplitConfig = spec(factory=_test_split, doc="same keys; the kNN monitor's queries (TRAIN is its bank)")


# ----------------------------------------------------------------------------- MODEL


@dataclass
class ResNetConfig:
    DEPTH: int = spec(50, choices=(18, 34, 50, 101), doc="18 | 34 | 50 | 101")
    WIDTH_MULTIPLIER: float = spec(1.0, gt=0, doc="channels x this (64 in the stem at 1.0)")
    SMALL_IMAGE_STEM: bool = spec(False, doc="3x3 stride-1 stem, no max-pool (small images)")
    INPUT_CHANNELS: int = spec(3, gt=0, doc="image channels")
    NORM: str = spec("BatchNorm", choices=("BatchNorm", "GroupNorm", "SyncBatchNorm"), doc="BatchNorm | GroupNorm | SyncBatchNorm")
    GROUPNORM_GROUPS: int = spec(32, gt=0, doc="GroupNorm groups (fewer where a width is not divisible)")


@dataclass
class TrunkConfig:
    NAME: str = spec("resnet", choices=("resnet",), doc="resnet")
    RESNETS: ResNetConfig = spec(factory=ResNetConfig)


def _simclr_head():
    return [["mlp", {"dims": [2048, 2048, 128], "use_bn": False, "use_relu": True}]]


@dataclass
class HeadConfig:
    # VISSL's list form: [[name, {kwargs}], ...], applied in order.
    PARAMS: List[Any] = spec(factory=_simclr_head, doc="VISSL's list form: [[name, {arguments}], ...]")


@dataclass
class FeatureEvalConfig:
    FREEZE_TRUNK: bool = spec(False, doc="no gradients and eval-mode BatchNorm in the trunk")


@dataclass
class AMPConfig:
    USE_AMP: bool = spec(False, doc="autocast mixed precision")
    AMP_DTYPE: str = spec("bfloat16", choices=("bfloat16", "float16"), doc="bfloat16 | float16 (float16 adds a GradScaler; GPU only)")


@dataclass
class GradClipConfig:
    USE_GRAD_CLIP: bool = spec(False, doc="clip the total gradient norm before each step")
    MAX_NORM: float = spec(1.0, gt=0, doc="clipping threshold")
    NORM_TYPE: float = spec(2.0, gt=0, doc="p of the p-norm")


@dataclass
class SyncBNConfig:
    CONVERT_BN_TO_SYNC_BN: bool = spec(False, doc="under torchrun on GPUs: BatchNorm statistics over the global batch")


@dataclass
class WeightsInitConfig:
    PARAMS_FILE: str = spec("", doc="a vissl_lite checkpoint to initialise the model from")
    TRUNK_ONLY: bool = spec(True, doc="load only trunk.* weights (heads start fresh)")
    STRICT: bool = spec(True, doc="refuse missing / unexpected / reshaped keys (false: load what fits, log the rest)")


@dataclass
class ModelConfig:
    TRUNK: TrunkConfig = spec(factory=TrunkConfig)
    HEAD: HeadConfig = spec(factory=HeadConfig)
    FEATURE_EVAL_SETTINGS: FeatureEvalConfig = spec(factory=FeatureEvalConfig)
    NON_TRAINABLE_PARAMS: List[str] = spec(factory=list, doc="exact parameter names to freeze")
    AMP_PARAMS: AMPConfig = spec(factory=AMPConfig)
    GRAD_CLIP: GradClipConfig = spec(factory=GradClipConfig)
    WEIGHTS_INIT: WeightsInitConfig = spec(factory=WeightsInitConfig)
    SYNC_BN_CONFIG: SyncBNConfig = spec(factory=SyncBNConfig)


# ----------------------------------------------------------------------------- LOSS


@dataclass
class SimCLRLossConfig:
    temperature: float = spec(0.1, gt=0, doc="softmax temperature (> 0)")


@dataclass
class BarlowTwinsLossConfig:
    lambda_: float = spec(0.0051, ge=0, doc="weight of the off-diagonal terms")
    scale_loss: float = spec(0.024, gt=0, doc="overall loss scale")
    embedding_dim: int = spec(8192, gt=0, doc="the head's output width (checked)")


@dataclass
class LossConfig:
    name: str = spec("simclr_info_nce_loss", doc="simclr_info_nce_loss | barlow_twins_loss | cross_entropy | registered")
    simclr_info_nce_loss: SimCLRLossConfig = spec(factory=SimCLRLossConfig)
    barlow_twins_loss: BarlowTwinsLossConfig = spec(factory=BarlowTwinsLossConfig)


# ----------------------------------------------------------------------------- the rest


@dataclass
class KNNMonitorConfig:
    ENABLED: bool = spec(True, doc="kNN top-1 on trunk features (TRAIN bank, TEST queries)")
    EVAL_PERIOD_EPOCHS: int = spec(1, gt=0, doc="every N epochs, and always at the end")
    K: int = spec(20, gt=0, doc="neighbours")
    TEMPERATURE: float = spec(0.07, gt=0, doc="weights exp(cosine / T) of the neighbours' votes")


@dataclass
class TensorboardConfig:
    USE_TENSORBOARD: bool = spec(False, doc="also write scalars to <run dir>/tb")


@dataclass
class HooksConfig:
    LOG_FREQUENCY: int = spec(10, gt=0, doc="iterations between log lines and metrics.jsonl records")
    PROGRESS_BAR: bool = spec(True, doc="live tqdm bar per epoch on the main process")
    TENSORBOARD_SETUP: TensorboardConfig = spec(factory=TensorboardConfig)
    KNN_MONITOR: KNNMonitorConfig = spec(factory=KNNMonitorConfig)


@dataclass
class CheckpointConfig:
    DIR: str = spec("", doc="empty: <run dir>/checkpoints")
    CHECKPOINT_FREQUENCY: int = spec(1, gt=0, doc="epochs between checkpoints (the final one is always written)")
    CHECKPOINT_ITER_FREQUENCY: int = spec(0, ge=0, doc="also every N optimizer steps (0: off)")
    AUTO_RESUME: bool = spec(True, doc="continue from the latest good checkpoint in DIR")
    MAX_KEEP: int = spec(3, ge=0, doc="keep the newest N step checkpoints (0: all; model_final is always kept)")
    LOAD_WEIGHTS_ONLY: bool = spec(False, doc="on resume take the model weights only (fresh optimizer; the step count carries on)")


@dataclass
class DistributedConfig:
    BACKEND: Optional[str] = spec(None, choices=("gloo", "nccl"), doc="gloo | nccl; null: nccl on GPU, gloo on CPU")
    NUM_NODES: int = spec(1, gt=0, doc="planned nodes: explain previews auto scaling with NUM_NODES x NUM_PROC_PER_NODE")
    NUM_PROC_PER_NODE: int = spec(1, gt=0, doc="planned processes per node (the real world size comes from torchrun)")
    TIMEOUT_MINUTES: float = spec(30.0, gt=0, doc="collective timeout")


@dataclass
class MachineConfig:
    DEVICE: Optional[str] = spec(None, choices=("cpu", "gpu"), doc="cpu | gpu; null: gpu when one is present")


@dataclass
class VisslLiteConfig:
    engine_name: str = spec("train", choices=("train", "explain"), doc="train | explain (print groups and schedules, write explain.json + schedule.png)")
    SEED_VALUE: int = spec(0, ge=0, doc="seeds torch, numpy and python; a run with the same seed repeats")
    OPTIMIZER: OptimizerConfig = spec(factory=OptimizerConfig)
    DATA: DataConfig = spec(factory=DataConfig)
    MODEL: ModelConfig = spec(factory=ModelConfig)
    LOSS: LossConfig = spec(factory=LossConfig)
    HOOKS: HooksConfig = spec(factory=HooksConfig)
    CHECKPOINT: CheckpointConfig = spec(factory=CheckpointConfig)
    DISTRIBUTED: DistributedConfig = spec(factory=DistributedConfig)
    MACHINE: MachineConfig = spec(factory=MachineConfig)
