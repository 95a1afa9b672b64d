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
    # Types only: None (or an empty list) means "not set", and the schedule builder
    # (vissl_lite/optim/schedules) checks what each type needs, so the same checks serve configs
    # and plain dicts from users' scripts. One flat set of keys serves the three dialects:
    # VISSL / ClassyVision types, name: mmengine (its schedulers list) and name: mmcv
    # (docs/schedules.md translates between them).
    name: Optional[str] = spec(None, doc="the schedule type: constant | linear | cosine | exponential | multistep | step | step_with_fixed_gamma | polynomial | inverse_sqrt | cosine_warm_restart | composite | mmengine | mmcv | registered")
    update_interval: Optional[str] = spec(None, doc="VISSL types: step | epoch; null: the type's default (ClassyVision's)")
    values: List[float] = spec(factory=list, doc="multistep, step: one value per piece")
    milestones: List[int] = spec(factory=list, doc="multistep: epochs where the next value starts; MultiStepLR: steps of its window where it decays")
    start_value: Optional[float] = spec(None, doc="linear, cosine, exponential, inverse_sqrt, cosine_warm_restart")
    end_value: Optional[float] = spec(None, doc="linear, cosine, cosine_warm_restart")
    value: Optional[float] = spec(None, doc="constant")
    base_value: Optional[float] = spec(None, doc="polynomial, step_with_fixed_gamma; mmengine, mmcv: the optimizer's lr; null in a momentum / weight-decay schedule: OPTIMIZER.momentum / weight_decay")
    power: Optional[float] = spec(None, doc="polynomial; PolyLR, mmcv poly (null: 1)")
    gamma: Optional[float] = spec(None, doc="step_with_fixed_gamma: factor per decay (> 0); StepLR, MultiStepLR (null: 0.1), ExponentialLR; mmcv step (null: 0.1), exp, cyclic (null: 1)")
    decay: Optional[float] = spec(None, doc="exponential: start_value x decay ** where (> 0)")
    num_decays: Optional[int] = spec(None, doc="step_with_fixed_gamma: number of decays (> 0)")
    schedulers: List["ScheduleConfig"] = spec(factory=list, doc="composite: child schedules (same fields, nesting allowed); mmengine: MMEngine's schedulers, applied in list order")
    lengths: List[float] = spec(factory=list, doc="composite: fraction of training per child, summing to 1")
    interval_scaling: List[str] = spec(factory=list, doc="composite: rescaled | fixed per child; empty: all rescaled")
    restart_interval_length: Optional[float] = spec(None, doc="cosine_warm_restart: fraction of training per wave, in (0, 1]")
    wave_type: str = spec("half", doc="cosine_warm_restart: half | full")
    lr_multiplier: float = spec(1.0, doc="cosine_warm_restart: peak x lr_multiplier at each restart")
    is_adaptive: bool = spec(False, doc="cosine_warm_restart: restart peaks follow the single cosine")
    warmup_interval_length: Optional[float] = spec(None, doc="inverse_sqrt: where the decay reaches start_value, in [0, 1)")
    # An entry of name: mmengine's schedulers list, with MMEngine's names and defaults.
    type: Optional[str] = spec(None, doc="mmengine entry: LinearLR | ConstantLR | ExponentialLR | StepLR | MultiStepLR | CosineAnnealingLR | PolyLR | OneCycleLR | CosineRestartLR (also ...Momentum, ...ParamScheduler)")
    begin: Optional[int] = spec(None, doc="mmengine entry: first step of its window, in epochs when by_epoch else iterations; null: 0")
    end: Optional[int] = spec(None, doc="mmengine entry: end of its window (excluded); null: the end of training")
    by_epoch: Optional[bool] = spec(None, doc="mmengine entry: steps once per epoch (null: true); mmcv: progress counts epochs (null: true, cyclic false)")
    convert_to_iter_based: bool = spec(False, doc="mmengine entry: an epoch window and epoch counts x steps per epoch, stepped every iteration")
    start_factor: Optional[float] = spec(None, doc="LinearLR: factor at begin, in (0, 1]; null: 1/3")
    end_factor: Optional[float] = spec(None, doc="LinearLR: factor reached at end - 1, in [0, 1]; null: 1")
    factor: Optional[float] = spec(None, doc="ConstantLR: factor until end - 1, in (0, 1]; null: 1/3")
    step_size: Optional[int] = spec(None, doc="StepLR: decay every step_size steps of its window")
    T_max: Optional[int] = spec(None, doc="CosineAnnealingLR: half-period of the cosine; null: end - begin")
    eta_min: Optional[float] = spec(None, doc="CosineAnnealingLR (null: 0), PolyLR (null: 0), CosineRestartLR: the absolute floor")
    eta_min_ratio: Optional[float] = spec(None, doc="CosineAnnealingLR, CosineRestartLR: floor = base_value x this, instead of eta_min")
    eta_max: Optional[float] = spec(None, doc="OneCycleLR: the peak (the cycle starts at eta_max / div_factor)")
    total_steps: Optional[int] = spec(None, doc="OneCycleLR: cycle length; null: end - begin")
    pct_start: Optional[float] = spec(None, doc="OneCycleLR: rising fraction of the cycle; null: 0.3")
    anneal_strategy: Optional[str] = spec(None, doc="OneCycleLR, mmcv cyclic: cos | linear; null: cos")
    div_factor: Optional[float] = spec(None, doc="OneCycleLR: start = eta_max / div_factor; null: 25")
    final_div_factor: Optional[float] = spec(None, doc="OneCycleLR: end = start / final_div_factor; null: 1e4")
    three_phase: bool = spec(False, doc="OneCycleLR: rise, fall back to the start, then anneal")
    periods: List[int] = spec(factory=list, doc="CosineRestartLR: length of each cosine cycle")
    restart_weights: List[float] = spec(factory=list, doc="CosineRestartLR: each cycle starts at base_value x its weight; empty: [1]")
    # name: mmcv, mmcv 1.x's lr_config / momentum_config keys as mmdet 2.x writes them.
    policy: Optional[str] = spec(None, doc="mmcv: step | poly | CosineAnnealing | exp | cyclic (momentum: cyclic); lower case is title-cased as mmcv does")
    step: Any = spec(None, doc="mmcv step: decay epochs (iterations when not by_epoch) as a list, or a period as an int")
    min_lr: Optional[float] = spec(None, doc="mmcv step (clip; null: none), poly (null: 0), CosineAnnealing: the absolute floor")
    min_lr_ratio: Optional[float] = spec(None, doc="mmcv CosineAnnealing: floor = base_value x this, instead of min_lr")
    target_ratio: Any = spec(None, doc="mmcv cyclic: [peak, end] / base_value, one number r: [r, r / 1e5]; null: [10, 1e-4] (momentum [0.85/0.95, 1])")
    cyclic_times: Optional[int] = spec(None, doc="mmcv cyclic: cycles over training; null: 1")
    step_ratio_up: Optional[float] = spec(None, doc="mmcv cyclic: rising fraction of each cycle, in [0, 1); null: 0.4")
    warmup: Optional[str] = spec(None, doc="mmcv: constant | linear | exp warmup; null: none")
    warmup_iters: Optional[int] = spec(None, doc="mmcv: warmup length in iterations (epochs when warmup_by_epoch)")
    warmup_ratio: Optional[float] = spec(None, doc="mmcv: warmup starts at regular x this, in (0, 1]; null: 0.1 (momentum: regular / 0.9)")
    warmup_by_epoch: bool = spec(False, doc="mmcv: warmup_iters counts epochs")
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
    clip: bool = spec(False, doc="LARC clipping mode: local LR a = min(a / LR, 1)")
    eps: float = spec(1e-8, ge=0, doc="added to the LARC denominator (>= 0)")
    trust_coefficient: float = spec(1e-3, ge=0, doc="LARC trust coefficient (>= 0)")
    exclude_bias_and_norm: bool = spec(False, doc="leave 1-D parameters (biases, norm weights) unadapted")


@dataclass
class LARSConfig:
    eta: float = spec(1e-3, ge=0, doc="lars trust coefficient: update scaled to eta x ||p|| / ||g + wd p||")
    exclude_bias_and_norm: bool = spec(False, doc="lars: leave 1-D parameters (biases, norm weights) unadapted")


@dataclass
class ParamMultConfig:
    lr_mult: float = spec(1.0, ge=0, doc="the matched parameters' LR x this")
    decay_mult: float = spec(1.0, ge=0, doc="the matched parameters' weight decay x this")


@dataclass
class ParamwiseConfig:
    # MMEngine's paramwise_cfg (DefaultOptimWrapperConstructor); docs/optimizers.md maps its keys.
    custom_keys: Dict[str, ParamMultConfig] = spec(factory=dict, doc="{name substring: {lr_mult, decay_mult}}: the longest key in a parameter's name (ties: alphabetical) decides, type multipliers skipped")
    bias_lr_mult: Optional[float] = spec(None, ge=0, doc="LR x this for every bias outside norm layers; null: unset")
    bias_decay_mult: Optional[float] = spec(None, ge=0, doc="weight decay x this for every bias (norm biases too while norm_decay_mult is null); needs regularize_bias")
    norm_decay_mult: Optional[float] = spec(None, ge=0, doc="weight decay x this for norm-layer weights and biases; needs regularize_bn=true")
    dwconv_decay_mult: Optional[float] = spec(None, ge=0, doc="weight decay x this for depthwise Conv2d parameters (groups == in_channels) not covered above")
    flat_decay_mult: Optional[float] = spec(None, ge=0, doc="weight decay x this for other 1-D parameters")
    bypass_duplicate: bool = spec(True, doc="true: a shared parameter is optimised once, in the group of its first name; false: it is an error")


@dataclass
class LayerWiseLRDecayConfig:
    decay: float = spec(1.0, gt=0, le=1, doc="lr_decay: LR x decay^(num_layers + 1 - depth); depth from the trunk (ResNet: stem 0, layerN N), heads num_layers + 1")


@dataclass
class OptimizerConfig:
    name: str = spec("sgd", doc="sgd | adam | adamw | nadam | radam | adamax | adagrad | adadelta | rmsprop | asgd | rprop | lars, MMEngine's class names (SGD, AdamW, ...), or a name added with register_optimizer")
    weight_decay: float = spec(1e-4, ge=0, doc="trunk weight decay (>= 0); rprop has none (set 0)")
    # Per-optimizer keys: each optimizer reads those naming it (docs/optimizers.md has the table);
    # defaults are torch's.
    momentum: float = spec(0.9, ge=0, lt=1, doc="sgd / rmsprop / lars momentum, in [0, 1) (the Adam family's is betas[0])")
    dampening: float = spec(0.0, ge=0, le=1, doc="sgd: momentum dampening")
    nesterov: bool = spec(False, doc="sgd: Nesterov momentum (needs momentum > 0 and dampening 0)")
    betas: List[float] = spec(factory=_list(0.9, 0.999), ge=0, lt=1, length=2, doc="adam / adamw / nadam / radam / adamax: (beta1, beta2)")
    eps: Optional[float] = spec(None, ge=0, doc="denominator term; null: the optimizer's own (1e-8; adagrad 1e-10, adadelta 1e-6)")
    amsgrad: bool = spec(False, doc="adam / adamw: the AMSGrad variant")
    decoupled_weight_decay: bool = spec(False, doc="adam / nadam / radam: AdamW-style decoupled weight decay")
    momentum_decay: float = spec(4e-3, ge=0, doc="nadam: momentum decay psi")
    lr_decay: float = spec(0.0, ge=0, doc="adagrad: LR / (1 + (step - 1) x lr_decay)")
    initial_accumulator_value: float = spec(0.0, ge=0, doc="adagrad: starting sum of squared gradients")
    rho: float = spec(0.9, ge=0, le=1, doc="adadelta: running-average coefficient of squared gradients")
    alpha: Optional[float] = spec(None, ge=0, doc="null: the optimizer's own; rmsprop: smoothing constant (0.99); asgd: eta decay power (0.75)")
    centered: bool = spec(False, doc="rmsprop: normalise by the estimated gradient variance")
    lambd: float = spec(1e-4, ge=0, doc="asgd: decay term")
    t0: float = spec(1e6, ge=0, doc="asgd: step at which averaging starts")
    etas: List[float] = spec(factory=_list(0.5, 1.2), gt=0, length=2, doc="rprop: (etaminus, etaplus), 0 < etaminus < 1 < etaplus")
    step_sizes: List[float] = spec(factory=_list(1e-6, 50.0), gt=0, length=2, doc="rprop: (minimum, maximum) step size")
    maximize: bool = spec(False, doc="every torch optimizer (not lars): maximise the objective")
    num_epochs: int = spec(90, gt=0, doc="length of training; schedules span exactly this")
    accumulation_steps: int = spec(1, gt=0, doc="micro-batches per optimizer step; counts in the global batch")
    regularize_bn: bool = spec(False, doc="false: weight and bias of every norm layer get weight decay 0")
    regularize_bias: bool = spec(True, doc="false: every bias gets weight decay 0")
    non_regularized_parameters: List[str] = spec(factory=list, doc="substrings of parameter names that get weight decay 0 (their LR is kept)")
    head_optimizer_params: HeadOptimizerConfig = spec(factory=HeadOptimizerConfig)
    use_larc: bool = spec(False, doc="wrap the optimizer in LARC")
    larc_config: LARCConfig = spec(factory=LARCConfig)
    lars_config: LARSConfig = spec(factory=LARSConfig)
    construct_single_param_group_only: bool = spec(False, doc="one group of all trainable parameters at the trunk LR and weight decay (regularize_*, head options off; paramwise unset)")
    param_group_constructor: str = spec("default", doc="default | lr_decay (layer-wise LR decay) | a name added with register_param_group_constructor")
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
    BLUR_SIGMA: List[float] = spec(factory=_list(0.1, 2.0), gt=0, length=2, doc="blur sigma range, in pixels at CROP_SIZE 224 (scaled with CROP_SIZE, for local crops too)")
    SOLARIZE_P: float = spec(0.0, ge=0, le=1, doc="probability of solarization")
    MEAN: List[float] = spec(factory=_list(0.485, 0.456, 0.406), doc="normalisation mean per channel")
    STD: List[float] = spec(factory=_list(0.229, 0.224, 0.225), gt=0, doc="normalisation std per channel")
    # Multi-crop (DINO, SwAV): a method's global crops (CROP_SIZE, CROP_SCALE), then local ones.
    LOCAL_CROPS_NUMBER: int = spec(0, ge=0, doc="multi-crop methods (dino_loss, swav_loss): small crops per image after the global ones")
    LOCAL_CROP_SIZE: int = spec(96, gt=0, doc="multi-crop: local crop output side")
    LOCAL_CROP_SCALE: List[float] = spec(factory=_list(0.05, 0.4), gt=0, le=1, length=2, doc="multi-crop: local crop area range, fraction of the image")
    CROP_BLUR_P: List[float] = spec(factory=list, ge=0, le=1, doc="multi-crop: blur probability per crop in order (globals, then locals), the last value for all later crops; empty: BLUR_P")
    CROP_SOLARIZE_P: List[float] = spec(factory=list, ge=0, le=1, doc="multi-crop: solarization probability per crop, as CROP_BLUR_P; empty: SOLARIZE_P")


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
class VisionTransformerConfig:
    # VISSL's keys; an architecture key left null takes PRESET's value.
    PRESET: str = spec("base", choices=("tiny", "small", "base", "digits"), doc="tiny (DeiT-Ti/16) | small (DeiT-S/16) | base (ViT-B/16) | digits (8x8 images, patch 4, 4 blocks of width 96); the keys below that are set replace its values")
    IMAGE_SIZE: Optional[int] = spec(None, gt=0, doc="crop side the position embeddings are learned for (other sides interpolate them); null: PRESET's")
    PATCH_SIZE: Optional[int] = spec(None, gt=0, doc="patch side in pixels; null: PRESET's")
    INPUT_CHANNELS: int = spec(3, gt=0, doc="image channels")
    HIDDEN_DIM: Optional[int] = spec(None, gt=0, doc="token width, the trunk's feature size; null: PRESET's")
    NUM_LAYERS: Optional[int] = spec(None, gt=0, doc="transformer blocks; null: PRESET's")
    NUM_HEADS: Optional[int] = spec(None, gt=0, doc="attention heads (dividing HIDDEN_DIM); null: PRESET's")
    MLP_DIM: Optional[int] = spec(None, gt=0, doc="hidden width of each block's MLP; null: PRESET's")
    DROPOUT_RATE: float = spec(0.0, ge=0, lt=1, doc="dropout after the embeddings, in the MLPs and after the attention projection")
    ATTENTION_DROPOUT_RATE: float = spec(0.0, ge=0, lt=1, doc="dropout on the attention weights")
    DROP_PATH_RATE: float = spec(0.0, ge=0, lt=1, doc="stochastic depth: block i of L is skipped with probability rate x i / (L - 1) (DeiT)")
    QKV_BIAS: bool = spec(True, doc="biases in the query / key / value projection (DeiT, DINO)")
    CLASSIFIER: str = spec("token", choices=("token",), doc="the features are the class token's final state (VISSL's only choice)")


@dataclass
class TrunkConfig:
    NAME: str = spec("resnet", choices=("resnet", "vision_transformer"), doc="resnet (reads RESNETS) | vision_transformer (reads VISION_TRANSFORMERS)")
    RESNETS: ResNetConfig = spec(factory=ResNetConfig)
    VISION_TRANSFORMERS: VisionTransformerConfig = spec(factory=VisionTransformerConfig)


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
    AMP_DTYPE: str = spec("bfloat16", choices=("bfloat16", "float16"), doc="bfloat16 | float16 (float16 adds a loss scaler)")
    LOSS_SCALE: Optional[float] = spec(None, gt=0, doc="float16: null scales dynamically (GradScaler), a number is a static loss scale (MMEngine's loss_scale)")


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
    TEMP_FROZEN_PARAMS_ITER_MAP: List[Any] = spec(factory=list, doc="[[parameter name substring, N], ...]: those parameters do not move (no update, no weight decay) for the first N optimizer steps (VISSL)")
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


def _dino_momentum():
    return ScheduleConfig(name="cosine", update_interval="step", start_value=0.996, end_value=1.0)


def _dino_teacher_temp():
    return ScheduleConfig(name="composite", update_interval="step", lengths=[0.1, 0.9],
                          schedulers=[ScheduleConfig(name="linear", start_value=0.04, end_value=0.07),
                                      ScheduleConfig(name="constant", value=0.07)])


@dataclass
class DINOLossConfig:
    # The teacher's schedules are evaluated at the optimizer step k (see OPTIMIZER.param_schedulers).
    momentum: ScheduleConfig = spec(factory=_dino_momentum, doc="teacher EMA momentum m at each step (teacher = m teacher + (1 - m) student), in [0, 1]: cosine 0.996 -> 1")
    teacher_temp: ScheduleConfig = spec(factory=_dino_teacher_temp, doc="teacher softmax temperature at each step (> 0): linear 0.04 -> 0.07 over the first 10%, then 0.07")
    student_temp: float = spec(0.1, gt=0, doc="student softmax temperature")
    ema_center: float = spec(0.9, ge=0, le=1, doc="center momentum c: center = c center + (1 - c) batch mean of the teacher outputs")


@dataclass
class SwAVQueueConfig:
    queue_length: int = spec(0, ge=0, doc="embeddings of earlier batches kept for the assignments, over all processes (0: no queue)")
    local_queue_length: int = spec(0, ge=0, doc="per-process queue length; 0: queue_length // world size (VISSL infers it so)")
    start_iter: int = spec(0, ge=0, doc="optimizer step at which the queue starts filling (VISSL)")
    start_epoch: int = spec(0, ge=0, doc="epoch at which the queue starts filling (SwAV's epoch_queue_starts); the later of the two starts it")


@dataclass
class SwAVLossConfig:
    temperature: float = spec(0.1, gt=0, doc="softmax temperature of the predictions")
    use_double_precision: bool = spec(False, doc="Sinkhorn and the loss in float64")
    normalize_last_layer: bool = spec(True, doc="L2-normalise every prototype row before each optimizer step's forward")
    num_iters: int = spec(3, ge=0, doc="Sinkhorn-Knopp iterations")
    epsilon: float = spec(0.05, gt=0, doc="Sinkhorn's entropy weight: targets exp(scores / epsilon), equally partitioned")
    crops_for_assign: List[int] = spec(factory=_list(0, 1), ge=0, doc="crops whose assignments are the targets (0, 1: the two global crops)")
    temp_hard_assignment_iters: int = spec(0, ge=0, doc="one-hot targets for the first N optimizer steps")
    queue: SwAVQueueConfig = spec(factory=SwAVQueueConfig, doc="earlier embeddings added to Sinkhorn's samples (small batches)")


def _moco_momentum():
    return ScheduleConfig(name="constant", value=0.999)


@dataclass
class MoCoLossConfig:
    embedding_dim: int = spec(128, gt=0, doc="the head's output width (checked)")
    queue_size: int = spec(65536, gt=0, doc="negative keys kept, the same on every process")
    momentum: ScheduleConfig = spec(factory=_moco_momentum, doc="key encoder EMA momentum m at each step (key = m key + (1 - m) query encoder), in [0, 1]; VISSL's momentum: 0.999 is {name: constant, value: 0.999}")
    temperature: float = spec(0.2, gt=0, doc="InfoNCE temperature")
    shuffle_batch: bool = spec(True, doc="under torchrun: shuffle the key batch over processes for the key encoder's BatchNorm (MoCo's shuffled BN); off with CONVERT_BN_TO_SYNC_BN")


@dataclass
class LossConfig:
    name: str = spec("simclr_info_nce_loss", doc="simclr_info_nce_loss | barlow_twins_loss | dino_loss | swav_loss | moco_loss | cross_entropy | registered")
    simclr_info_nce_loss: SimCLRLossConfig = spec(factory=SimCLRLossConfig)
    barlow_twins_loss: BarlowTwinsLossConfig = spec(factory=BarlowTwinsLossConfig)
    dino_loss: DINOLossConfig = spec(factory=DINOLossConfig, doc="DINO: student + EMA teacher on multi-crop views (DATA.TRAIN.TRANSFORMS.LOCAL_CROPS_NUMBER)")
    swav_loss: SwAVLossConfig = spec(factory=SwAVLossConfig, doc="SwAV: swapped prediction of Sinkhorn assignments to prototypes (MODEL.HEAD swav_head) on multi-crop views")
    moco_loss: MoCoLossConfig = spec(factory=MoCoLossConfig, doc="MoCo v2: InfoNCE of queries against their momentum-encoder keys and a queue of negatives")


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


def _probe_optimizer():
    lr = ScheduleConfig(name="cosine", start_value=0.1, end_value=0.0)
    return OptimizerConfig(name="sgd", momentum=0.9, weight_decay=0.0,
                           param_schedulers=ParamSchedulersConfig(lr=lr, lr_head=lr))


@dataclass
class OnlineLinearProbeConfig:
    ENABLED: bool = spec(False, doc="train a linear classifier on detached trunk features during pretraining (solo-learn's online probe)")
    NUM_CLASSES: int = spec(10, gt=0, doc="classes of the TRAIN labels")
    EVAL_PERIOD_EPOCHS: int = spec(1, gt=0, doc="log online_linear_top1 on the TEST split every N epochs, and at the end")
    OPTIMIZER: OptimizerConfig = spec(factory=_probe_optimizer, doc="the probe's own optimizer and schedules; num_epochs and accumulation_steps follow the top-level OPTIMIZER")


@dataclass
class HooksConfig:
    LOG_FREQUENCY: int = spec(10, gt=0, doc="iterations between log lines and metrics.jsonl records")
    PROGRESS_BAR: bool = spec(True, doc="live tqdm bar per epoch on the main process")
    TENSORBOARD_SETUP: TensorboardConfig = spec(factory=TensorboardConfig)
    KNN_MONITOR: KNNMonitorConfig = spec(factory=KNNMonitorConfig)
    ONLINE_LINEAR_PROBE: OnlineLinearProbeConfig = spec(factory=OnlineLinearProbeConfig)


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
class VisslDifferenceConfig:
    key: str = spec("", doc="the key, or the parameters, whose numbers differ")
    vissl: str = spec("", doc="VISSL's value")
    vissl_lite: str = spec("", doc="vissl_lite's value")
    reason: str = spec("", doc="why the rules differ")


@dataclass
class ConvertedFromVisslConfig:
    # Written by vissl-lite-convert (vissl_lite/convert); nothing reads it but explain, which prints it.
    source: str = spec("", doc="the VISSL file(s) converted; empty: not a converted experiment")
    numbers: str = spec("vissl_lite", choices=("vissl_lite", "vissl"), doc="whose values the file holds where the rules differ: vissl_lite's, or VISSL's (--vissl-numbers)")
    differences: List[VisslDifferenceConfig] = spec(factory=list, doc="every place where VISSL's rules give other numbers than vissl_lite's")


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
    CONVERTED_FROM_VISSL: ConvertedFromVisslConfig = spec(factory=ConvertedFromVisslConfig, doc="written by vissl-lite-convert: the VISSL source and its differences in numbers (explain prints them)")
