"""The typed schema of every config section.

`conf/defaults.yaml` documents these keys one by one; a test keeps the two in step.
Constraints live in field metadata (see `spec`) so `validate.py` can check every key with one
walker and name the full key path in its message.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

def spec(default=None, *, factory=None, choices=None, ge=None, gt=None, le=None, lt=None):
    """A dataclass field with optional constraints, checked by `validate.py`.

    Constraints apply to the value, or to every element of a list value; None passes them.
    """
    meta = {k: v for k, v in dict(choices=choices, ge=ge, gt=gt, le=le, lt=lt).items() if v is not None}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _list(*values):
    return lambda: list(values)


# ----------------------------------------------------------------------------- OPTIMIZER


@dataclass
class AutoLRScalingConfig:
    auto_scale: bool = False
    base_value: float = spec(0.1, gt=0)
    base_lr_batch_size: int = spec(256, gt=0)
    scaling_type: str = spec("linear", choices=("linear", "sqrt"))


@dataclass
class ScheduleConfig:
    # Types only: None means "not set", and build_param_scheduler checks what each schedule
    # type needs, so the same checks serve configs and plain dicts from users' scripts.
    name: Optional[str] = None
    update_interval: Optional[str] = None
    values: List[float] = spec(factory=list)
    milestones: List[int] = spec(factory=list)
    start_value: Optional[float] = None
    end_value: Optional[float] = None
    value: Optional[float] = None
    base_value: Optional[float] = None
    power: Optional[float] = None
    gamma: Optional[float] = None
    num_decays: Optional[int] = None
    schedulers: List["ScheduleConfig"] = spec(factory=list)
    lengths: List[float] = spec(factory=list)
    interval_scaling: List[str] = spec(factory=list)
    restart_interval_length: Optional[float] = None
    wave_type: str = "half"
    lr_multiplier: float = 1.0
    is_adaptive: bool = False
    warmup_interval_length: Optional[float] = None
    auto_lr_scaling: AutoLRScalingConfig = spec(factory=AutoLRScalingConfig)


def _multistep_lr():
    return ScheduleConfig(name="multistep", values=[0.1, 0.01, 0.001], milestones=[30, 60])


@dataclass
class ParamSchedulersConfig:
    lr: ScheduleConfig = spec(factory=_multistep_lr)
    # Follows `lr` unless OPTIMIZER.head_optimizer_params.use_different_lr.
    lr_head: ScheduleConfig = spec(factory=_multistep_lr)
    # Optional schedules: name null means "not scheduled, use the OPTIMIZER value".
    weight_decay: ScheduleConfig = spec(factory=ScheduleConfig)
    weight_decay_head: ScheduleConfig = spec(factory=ScheduleConfig)
    momentum: ScheduleConfig = spec(factory=ScheduleConfig)


@dataclass
class HeadOptimizerConfig:
    use_different_lr: bool = False
    use_different_wd: bool = False
    weight_decay: float = spec(1e-4, ge=0)


@dataclass
class LARCConfig:
    clip: bool = False
    eps: float = spec(1e-8, ge=0)
    trust_coefficient: float = spec(1e-3, ge=0)
    exclude_bias_and_norm: bool = False


@dataclass
class LARSConfig:
    eta: float = spec(1e-3, ge=0)
    exclude_bias_and_norm: bool = False


@dataclass
class ParamMultConfig:
    lr_mult: float = spec(1.0, ge=0)
    decay_mult: float = spec(1.0, ge=0)


@dataclass
class ParamwiseConfig:
    custom_keys: Dict[str, ParamMultConfig] = spec(factory=dict)


@dataclass
class LayerWiseLRDecayConfig:
    decay: float = spec(1.0, gt=0, le=1)


@dataclass
class OptimizerConfig:
    name: str = "sgd"  # checked against the optimizer registry
    weight_decay: float = spec(1e-4, ge=0)
    momentum: float = spec(0.9, ge=0, lt=1)
    nesterov: bool = False
    betas: List[float] = spec(factory=_list(0.9, 0.999), ge=0, lt=1)
    eps: float = spec(1e-8, ge=0)
    amsgrad: bool = False
    num_epochs: int = spec(90, gt=0)
    accumulation_steps: int = spec(1, gt=0)
    regularize_bn: bool = False
    regularize_bias: bool = True
    non_regularized_parameters: List[str] = spec(factory=list)
    head_optimizer_params: HeadOptimizerConfig = spec(factory=HeadOptimizerConfig)
    use_larc: bool = False
    larc_config: LARCConfig = spec(factory=LARCConfig)
    lars_config: LARSConfig = spec(factory=LARSConfig)
    construct_single_param_group_only: bool = False
    param_group_constructor: str = spec("default", choices=("default", "lr_decay"))
    layer_wise_lr_decay: LayerWiseLRDecayConfig = spec(factory=LayerWiseLRDecayConfig)
    paramwise: ParamwiseConfig = spec(factory=ParamwiseConfig)
    param_schedulers: ParamSchedulersConfig = spec(factory=ParamSchedulersConfig)


# ----------------------------------------------------------------------------- DATA


@dataclass
class TransformsConfig:
    CROP_SIZE: int = spec(224, gt=0)
    CROP_SCALE: List[float] = spec(factory=_list(0.08, 1.0), gt=0, le=1)
    HFLIP_P: float = spec(0.5, ge=0, le=1)
    COLOR_DISTORTION_STRENGTH: float = spec(1.0, ge=0)
    COLOR_JITTER_P: float = spec(0.8, ge=0, le=1)
    GRAYSCALE_P: float = spec(0.2, ge=0, le=1)
    BLUR_P: float = spec(0.5, ge=0, le=1)
    BLUR_SIGMA: List[float] = spec(factory=_list(0.1, 2.0), gt=0)
    SOLARIZE_P: float = spec(0.0, ge=0, le=1)
    MEAN: List[float] = spec(factory=_list(0.485, 0.456, 0.406))
    STD: List[float] = spec(factory=_list(0.229, 0.224, 0.225), gt=0)


@dataclass
class DataSplitConfig:
    DATA_SOURCES: List[str] = spec(factory=_list("digits"), choices=("digits", "synthetic", "disk_folder"))
    DATA_PATHS: List[str] = spec(factory=list)
    BATCHSIZE_PER_REPLICA: int = spec(256, gt=0)
    NUM_DATALOADER_WORKERS: int = spec(0, ge=0)
    DROP_LAST: bool = True
    DATA_LIMIT: int = spec(-1, ge=-1)
    NUM_SAMPLES_SYNTHETIC: int = spec(1024, gt=0)
    TRANSFORMS: TransformsConfig = spec(factory=TransformsConfig)


def _test_split():
    return DataSplitConfig(DROP_LAST=False)


@dataclass
class DataConfig:
    TRAIN: DataSplitConfig = spec(factory=DataSplitConfig)
    TEST: DataSplitConfig = spec(factory=_test_split)


# ----------------------------------------------------------------------------- MODEL


@dataclass
class ResNetConfig:
    DEPTH: int = spec(50, choices=(18, 34, 50, 101))
    WIDTH_MULTIPLIER: float = spec(1.0, gt=0)
    SMALL_IMAGE_STEM: bool = False
    INPUT_CHANNELS: int = spec(3, gt=0)
    NORM: str = spec("BatchNorm", choices=("BatchNorm", "GroupNorm", "SyncBatchNorm"))
    GROUPNORM_GROUPS: int = spec(32, gt=0)


@dataclass
class TrunkConfig:
    NAME: str = spec("resnet", choices=("resnet",))
    RESNETS: ResNetConfig = spec(factory=ResNetConfig)


def _simclr_head():
    return [["mlp", {"dims": [2048, 2048, 128], "use_bn": False, "use_relu": True}]]


@dataclass
class HeadConfig:
    # VISSL's list form: [[name, {kwargs}], ...], applied in order.
    PARAMS: List[Any] = spec(factory=_simclr_head)


@dataclass
class FeatureEvalConfig:
    FREEZE_TRUNK: bool = False


@dataclass
class AMPConfig:
    USE_AMP: bool = False
    AMP_DTYPE: str = spec("bfloat16", choices=("bfloat16", "float16"))


@dataclass
class GradClipConfig:
    USE_GRAD_CLIP: bool = False
    MAX_NORM: float = spec(1.0, gt=0)
    NORM_TYPE: float = spec(2.0, gt=0)


@dataclass
class SyncBNConfig:
    CONVERT_BN_TO_SYNC_BN: bool = False


@dataclass
class WeightsInitConfig:
    PARAMS_FILE: str = ""  # a vissl_lite checkpoint to start from
    TRUNK_ONLY: bool = True
    STRICT: bool = True


@dataclass
class ModelConfig:
    TRUNK: TrunkConfig = spec(factory=TrunkConfig)
    HEAD: HeadConfig = spec(factory=HeadConfig)
    FEATURE_EVAL_SETTINGS: FeatureEvalConfig = spec(factory=FeatureEvalConfig)
    NON_TRAINABLE_PARAMS: List[str] = spec(factory=list)
    AMP_PARAMS: AMPConfig = spec(factory=AMPConfig)
    GRAD_CLIP: GradClipConfig = spec(factory=GradClipConfig)
    WEIGHTS_INIT: WeightsInitConfig = spec(factory=WeightsInitConfig)
    SYNC_BN_CONFIG: SyncBNConfig = spec(factory=SyncBNConfig)


# ----------------------------------------------------------------------------- LOSS


@dataclass
class SimCLRLossConfig:
    temperature: float = spec(0.1, gt=0)


@dataclass
class BarlowTwinsLossConfig:
    lambda_: float = spec(0.0051, ge=0)
    scale_loss: float = spec(0.024, gt=0)
    embedding_dim: int = spec(8192, gt=0)


@dataclass
class LossConfig:
    name: str = "simclr_info_nce_loss"  # checked against the loss registry
    simclr_info_nce_loss: SimCLRLossConfig = spec(factory=SimCLRLossConfig)
    barlow_twins_loss: BarlowTwinsLossConfig = spec(factory=BarlowTwinsLossConfig)


# ----------------------------------------------------------------------------- the rest


@dataclass
class KNNMonitorConfig:
    ENABLED: bool = True
    EVAL_PERIOD_EPOCHS: int = spec(1, gt=0)
    K: int = spec(20, gt=0)
    TEMPERATURE: float = spec(0.07, gt=0)


@dataclass
class TensorboardConfig:
    USE_TENSORBOARD: bool = False


@dataclass
class HooksConfig:
    LOG_FREQUENCY: int = spec(10, gt=0)
    PROGRESS_BAR: bool = True
    TENSORBOARD_SETUP: TensorboardConfig = spec(factory=TensorboardConfig)
    KNN_MONITOR: KNNMonitorConfig = spec(factory=KNNMonitorConfig)


@dataclass
class CheckpointConfig:
    DIR: str = ""  # empty: <run dir>/checkpoints
    CHECKPOINT_FREQUENCY: int = spec(1, gt=0)
    CHECKPOINT_ITER_FREQUENCY: int = spec(0, ge=0)
    AUTO_RESUME: bool = True
    MAX_KEEP: int = spec(0, ge=0)
    LOAD_WEIGHTS_ONLY: bool = False


@dataclass
class DistributedConfig:
    BACKEND: Optional[str] = spec(None, choices=("gloo", "nccl"))
    NUM_NODES: int = spec(1, gt=0)
    NUM_PROC_PER_NODE: int = spec(1, gt=0)
    TIMEOUT_MINUTES: float = spec(30.0, gt=0)


@dataclass
class MachineConfig:
    DEVICE: Optional[str] = spec(None, choices=("cpu", "gpu"))  # null: gpu when one is present


@dataclass
class VisslLiteConfig:
    engine_name: str = spec("train", choices=("train", "explain"))
    SEED_VALUE: int = spec(0, ge=0)
    OPTIMIZER: OptimizerConfig = spec(factory=OptimizerConfig)
    DATA: DataConfig = spec(factory=DataConfig)
    MODEL: ModelConfig = spec(factory=ModelConfig)
    LOSS: LossConfig = spec(factory=LossConfig)
    HOOKS: HooksConfig = spec(factory=HooksConfig)
    CHECKPOINT: CheckpointConfig = spec(factory=CheckpointConfig)
    DISTRIBUTED: DistributedConfig = spec(factory=DistributedConfig)
    MACHINE: MachineConfig = spec(factory=MachineConfig)
