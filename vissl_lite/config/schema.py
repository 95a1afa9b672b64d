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


def schedule(default: Optional[dict] = None, *, doc: str):
    """A schedule section `{name: X, **X's arguments}` (plus auto_lr_scaling on an LR), checked
    against X's declaration in vissl_lite/optim/schedules. It holds what was written; `default`
    applies while it names no type or the default's, filling the arguments not written (an empty
    default: not scheduled)."""
    return field(default_factory=dict, metadata=dict(doc=doc, schedule=dict(default or {})))


# VISSL's default LR schedule (vissl/config/defaults.yaml).
VISSL_MULTISTEP_LR = {"name": "multistep", "values": [0.1, 0.01, 0.001], "milestones": [30, 60]}


@dataclass
class ParamSchedulersConfig:
    lr: Dict[str, Any] = schedule(VISSL_MULTISTEP_LR, doc="the trunk's LR (and the head's unless use_different_lr); default: VISSL's multistep, 0.1 / 0.01 / 0.001 from epochs 0 / 30 / 60")
    # Follows `lr` unless OPTIMIZER.head_optimizer_params.use_different_lr.
    lr_head: Dict[str, Any] = schedule(VISSL_MULTISTEP_LR, doc="head groups' LR, used when use_different_lr (else = lr)")
    weight_decay: Dict[str, Any] = schedule(doc="optional: unset keeps OPTIMIZER.weight_decay constant")
    weight_decay_head: Dict[str, Any] = schedule(doc="optional head weight-decay schedule, used when use_different_wd")
    momentum: Dict[str, Any] = schedule(doc="optional: SGD / RMSprop / LARS momentum or the Adam family's beta1")


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
    # Per-optimizer keys: each is an argument of some optimizers only, and a key the chosen one
    # does not take is refused (vissl_lite/optim/optimizers.py: each row's arguments and
    # defaults, torch's except momentum 0.9). null: the optimizer's default.
    momentum: Optional[float] = spec(None, ge=0, lt=1, doc="sgd / rmsprop / lars momentum, in [0, 1); null: 0.9 (the Adam family's is betas[0])")
    dampening: Optional[float] = spec(None, ge=0, le=1, doc="sgd: momentum dampening; null: 0")
    nesterov: Optional[bool] = spec(None, doc="sgd: Nesterov momentum (needs momentum > 0 and dampening 0); null: false")
    betas: Optional[List[float]] = spec(None, ge=0, lt=1, length=2, doc="adam / adamw / nadam / radam / adamax: (beta1, beta2); null: (0.9, 0.999)")
    eps: Optional[float] = spec(None, ge=0, doc="denominator term; null: the optimizer's own (1e-8; adagrad 1e-10, adadelta 1e-6)")
    amsgrad: Optional[bool] = spec(None, doc="adam / adamw: the AMSGrad variant; null: false")
    decoupled_weight_decay: Optional[bool] = spec(None, doc="adam / nadam / radam: AdamW-style decoupled weight decay; null: false")
    momentum_decay: Optional[float] = spec(None, ge=0, doc="nadam: momentum decay psi; null: 0.004")
    lr_decay: Optional[float] = spec(None, ge=0, doc="adagrad: LR / (1 + (step - 1) x lr_decay); null: 0")
    initial_accumulator_value: Optional[float] = spec(None, ge=0, doc="adagrad: starting sum of squared gradients; null: 0")
    rho: Optional[float] = spec(None, ge=0, le=1, doc="adadelta: running-average coefficient of squared gradients; null: 0.9")
    alpha: Optional[float] = spec(None, ge=0, doc="rmsprop: smoothing constant (null: 0.99); asgd: eta decay power (null: 0.75)")
    centered: Optional[bool] = spec(None, doc="rmsprop: normalise by the estimated gradient variance; null: false")
    lambd: Optional[float] = spec(None, ge=0, doc="asgd: decay term; null: 1e-4")
    t0: Optional[float] = spec(None, ge=0, doc="asgd: step at which averaging starts; null: 1e6")
    etas: Optional[List[float]] = spec(None, gt=0, length=2, doc="rprop: (etaminus, etaplus), 0 < etaminus < 1 < etaplus; null: (0.5, 1.2)")
    step_sizes: Optional[List[float]] = spec(None, gt=0, length=2, doc="rprop: (minimum, maximum) step size; null: (1e-6, 50)")
    maximize: Optional[bool] = spec(None, doc="every torch optimizer (not lars): maximise the objective; null: false")
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
    RESIZE_SIZE: Optional[int] = spec(None, gt=0, doc="image files' evaluation view: the shorter side resized to this, then the centre CROP_SIZE crop; null: round(CROP_SIZE x 256 / 224)")
    INTERPOLATION: str = spec("bilinear", choices=("bilinear", "bicubic"), doc="image files: the antialiased resize of crops and evaluation views (DINO uses bicubic)")
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
    DATA_SOURCES: List[str] = spec(factory=_list("digits"), choices=("digits", "synthetic", "disk_folder", "disk_filelist", "manifest"), doc="digits (sklearn's 8x8 digits, bundled) | synthetic | disk_folder (root/class/**/image, or root/image unlabelled) | disk_filelist (VISSL's .npy of paths) | manifest (.txt/.csv of path[,label] lines)")
    DATA_PATHS: List[str] = spec(factory=list, doc="the source's one path: disk_folder's root folder, disk_filelist's .npy of paths, the manifest file")
    LABEL_PATHS: List[str] = spec(factory=list, doc="disk_filelist: [a .npy of integer labels, one per path]; empty: unlabelled")
    BATCHSIZE_PER_REPLICA: int = spec(256, gt=0, doc="images per process per micro-step")
    NUM_DATALOADER_WORKERS: int = spec(0, ge=0, doc="image files: DataLoader worker processes decoding and cropping (kept for the whole run); 0: in the main process")
    DROP_LAST: bool = spec(True, doc="drop the last incomplete batch")
    DATA_LIMIT: int = spec(-1, ge=-1, doc="use only the first N images (-1: all)")
    NUM_SAMPLES_SYNTHETIC: int = spec(1024, gt=0, doc="synthetic: number of images")
    TRANSFORMS: TransformsConfig = spec(factory=TransformsConfig, doc="SSL augmentation: crops and flips (of image files: cut at decode time in the workers), the rest batched on the device")


@dataclass
class TrainSplitConfig(DataSplitConfig):
    NUM_SAMPLES: Optional[int] = spec(None, gt=0, doc="the images per epoch engine_name=explain assumes (and says so) while the data cannot be counted, e.g. before it is downloaded; the ImageNet recipes set 1281167; null: explain needs the data; training always counts")


def _test_split():
    return DataSplitConfig(DROP_LAST=False)


@dataclass
class DataConfig:
    TRAIN: TrainSplitConfig = spec(factory=TrainSplitConfig)
    TEST: DataSplitConfig = spec(factory=_test_split, doc="same keys; the kNN monitor's queries (TRAIN is its bank)")


@dataclass
class PreviewConfig:
    NUM_IMAGES: int = spec(8, gt=0, doc="engine_name=augmentations: the first N images of DATA.TRAIN, one row each")
    REPEATS: int = spec(4, gt=0, doc="engine_name=augmentations: times each image's views are drawn (epochs 0 .. REPEATS - 1)")


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
    LAYER_SCALE_INIT: Optional[float] = spec(None, gt=0, doc="layer scale (CaiT; DINOv2 uses 1e-5): each block's attention and MLP outputs times a learned per-channel factor started at this value (blocks.N.ls1.gamma, ls2.gamma); null: none")
    NUM_REGISTER_TOKENS: int = spec(0, ge=0, doc="register tokens after the class token, without position embedding (DINOv2's _reg models: 4)")
    CLASSIFIER: str = spec("token", choices=("token",), doc="the features are the class token's final state (VISSL's only choice)")


@dataclass
class TrunkConfig:
    NAME: str = spec("resnet", doc="resnet (reads RESNETS) | vision_transformer (reads VISION_TRANSFORMERS) | a trunk registered with register_trunk")
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
    PARAMS_FILE: str = spec("", doc="weights to start from (.pth .pt .pth.tar .torch .bin .safetensors): a vissl_lite checkpoint or any layout FORMAT names")
    FORMAT: str = spec("auto", choices=("auto", "torchvision", "timm", "dino", "dinov2", "moco", "swav", "vissl", "vissl_lite"), doc="the file's layout: auto (recognised from its keys) | torchvision | timm | dino | dinov2 | moco | swav | vissl | vissl_lite (README: Your weights in / out)")
    PART: str = spec("auto", choices=("auto", "teacher", "student"), doc="auto: what each method releases (DINO: the EMA teacher; MoCo: the query encoder; vissl_lite: the trained model) | teacher: DINO's teacher, MoCo's key encoder, a vissl_lite run's EMA teacher or key encoder | student: DINO's student")
    TRUNK_ONLY: bool = spec(True, doc="load only the trunk (heads start fresh); false also loads heads from vissl_lite and VISSL checkpoints")
    STRICT: bool = spec(True, doc="a missing, mis-shaped or unused trunk tensor stops the run naming it (false: load what fits, list the rest)")
    STATE_DICT_KEY_NAME: str = spec("", doc="VISSL's: the top-level key holding the weights ('classy_state_dict' reads VISSL's nesting); empty: found from the layout")
    REMOVE_PREFIX: str = spec("", doc="VISSL's: this prefix is removed from every name that starts with it (before APPEND_PREFIX)")
    APPEND_PREFIX: str = spec("", doc="VISSL's: this prefix is put before every name (e.g. trunk._feature_blocks. for a torchvision file)")
    SKIP_LAYERS: List[str] = spec(factory=list, doc="VISSL's: model tensors whose name contains one of these substrings keep their initial values")
    FREEZE_TRUNK_EPOCHS: int = spec(0, ge=0, doc="the loaded trunk does not move for this many epochs (no update, eval mode so BatchNorm statistics stay): the heads warm up first")


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
    ACTIVATION_CHECKPOINTING: bool = spec(False, doc="recompute each ViT block's / ResNet stage's activations in the backward (torch.utils.checkpoint, non-reentrant): same gradients, less activation memory, about one more forward of compute")
    COMPILE: bool = spec(False, doc="torch.compile the trunk's and heads' forward (static shapes: one graph per crop size); falls back to eager with one warning where the backend cannot run")
    COMPILE_BACKEND: str = spec("inductor", doc="torch.compile's backend with COMPILE: inductor (generated kernels) | aot_eager (traced, eager kernels) | any name torch._dynamo.list_backends() gives")


# ----------------------------------------------------------------------------- LOSS


@dataclass
class SimCLRLossConfig:
    temperature: float = spec(0.1, gt=0, doc="softmax temperature (> 0)")


@dataclass
class BarlowTwinsLossConfig:
    lambda_: float = spec(0.0051, ge=0, doc="weight of the off-diagonal terms")
    scale_loss: float = spec(0.024, gt=0, doc="overall loss scale")
    embedding_dim: int = spec(8192, gt=0, doc="the head's output width (checked)")


DINO_MOMENTUM = {"name": "cosine", "update_interval": "step", "start_value": 0.996, "end_value": 1.0}
DINO_TEACHER_TEMP = {"name": "composite", "update_interval": "step", "lengths": [0.1, 0.9],
                     "schedulers": [{"name": "linear", "start_value": 0.04, "end_value": 0.07},
                                    {"name": "constant", "value": 0.07}]}


@dataclass
class DINOLossConfig:
    # The teacher's schedules are evaluated at the optimizer step k (see OPTIMIZER.param_schedulers).
    momentum: Dict[str, Any] = schedule(DINO_MOMENTUM, doc="teacher EMA momentum m at each step (teacher = m teacher + (1 - m) student), in [0, 1]: cosine 0.996 -> 1")
    teacher_temp: Dict[str, Any] = schedule(DINO_TEACHER_TEMP, doc="teacher softmax temperature at each step (> 0): linear 0.04 -> 0.07 over the first 10%, then 0.07")
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


MOCO_MOMENTUM = {"name": "constant", "value": 0.999}


@dataclass
class MoCoLossConfig:
    embedding_dim: int = spec(128, gt=0, doc="the head's output width (checked)")
    queue_size: int = spec(65536, gt=0, doc="negative keys kept, the same on every process")
    momentum: Dict[str, Any] = schedule(MOCO_MOMENTUM, doc="key encoder EMA momentum m at each step (key = m key + (1 - m) query encoder), in [0, 1]; VISSL's momentum: 0.999 is {name: constant, value: 0.999}")
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


PROBE_LR = {"name": "cosine", "start_value": 0.1, "end_value": 0.0}


@dataclass
class ProbeParamSchedulersConfig(ParamSchedulersConfig):
    lr: Dict[str, Any] = schedule(PROBE_LR, doc="the probe's LR")
    lr_head: Dict[str, Any] = schedule(PROBE_LR, doc="unused: the probe is one group")


@dataclass
class ProbeOptimizerConfig(OptimizerConfig):
    weight_decay: float = spec(0.0, ge=0, doc="the probe's weight decay")
    param_schedulers: ProbeParamSchedulersConfig = spec(factory=ProbeParamSchedulersConfig)


@dataclass
class OnlineLinearProbeConfig:
    ENABLED: bool = spec(False, doc="train a linear classifier on detached trunk features during pretraining (solo-learn's online probe)")
    NUM_CLASSES: int = spec(10, gt=0, doc="classes of the TRAIN labels")
    EVAL_PERIOD_EPOCHS: int = spec(1, gt=0, doc="log online_linear_top1 on the TEST split every N epochs, and at the end")
    OPTIMIZER: ProbeOptimizerConfig = spec(factory=ProbeOptimizerConfig, doc="the probe's own optimizer and schedules; num_epochs and accumulation_steps follow the top-level OPTIMIZER")


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
class FSDPConfig:
    RESHARD_AFTER_FORWARD: bool = spec(True, doc="fsdp: free the gathered parameters after each unit's forward (gathered again for backward); false keeps them until the backward, trading memory for one all-gather")


@dataclass
class DistributedConfig:
    BACKEND: Optional[str] = spec(None, choices=("gloo", "nccl"), doc="gloo | nccl; null: nccl on GPU, gloo on CPU")
    STRATEGY: str = spec("ddp", choices=("ddp", "fsdp"), doc="ddp: a full replica per process, single-file checkpoints; fsdp: FSDP2 (fully_shard) per ViT block / ResNet stage, the trunk and the root, sharded checkpoints (torch.distributed.checkpoint folders)")
    FSDP: FSDPConfig = spec(factory=FSDPConfig)
    NUM_NODES: int = spec(1, gt=0, doc="planned nodes: explain previews auto scaling with NUM_NODES x NUM_PROC_PER_NODE")
    NUM_PROC_PER_NODE: int = spec(1, gt=0, doc="planned processes per node (the real world size comes from torchrun)")
    TIMEOUT_MINUTES: float = spec(30.0, gt=0, doc="collective timeout")


@dataclass
class ExtractFeaturesConfig:
    SPLITS: List[str] = spec(factory=_list("TRAIN", "TEST"), choices=("TRAIN", "TEST"), doc="engine_name=extract_features: the DATA splits whose evaluation view (DATA.TEST.TRANSFORMS) is written to <run dir>/features/<SPLIT>_*")
    PATCH_TOKENS: bool = spec(False, doc="also <SPLIT>_patch_tokens.npy, float16 [N, patches, D]: a ViT's final-norm patch tokens")
    PART: str = spec("trunk", choices=("trunk", "teacher"), doc="trunk: the trained model's trunk | teacher: the EMA teacher's (DINO) or key encoder's (MoCo) trunk, from the run's checkpoint")
    OVERWRITE: bool = spec(False, doc="replace an existing <run dir>/features folder (otherwise the run stops before any work)")


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
    engine_name: str = spec("train", choices=("train", "explain", "extract_features", "augmentations"), doc="train | explain (print groups and schedules, write explain.json + schedule.png) | extract_features (trunk features of the run's checkpoint or MODEL.WEIGHTS_INIT, see EXTRACT_FEATURES) | augmentations (write augmentations.png / .npz of the training views, see PREVIEW)")
    SEED_VALUE: int = spec(0, ge=0, doc="seeds torch, numpy and python; a run with the same seed repeats")
    OPTIMIZER: OptimizerConfig = spec(factory=OptimizerConfig)
    DATA: DataConfig = spec(factory=DataConfig)
    PREVIEW: PreviewConfig = spec(factory=PreviewConfig, doc="engine_name=augmentations: what is drawn into augmentations.png / .npz")
    MODEL: ModelConfig = spec(factory=ModelConfig)
    LOSS: LossConfig = spec(factory=LossConfig)
    HOOKS: HooksConfig = spec(factory=HooksConfig)
    CHECKPOINT: CheckpointConfig = spec(factory=CheckpointConfig)
    DISTRIBUTED: DistributedConfig = spec(factory=DistributedConfig)
    MACHINE: MachineConfig = spec(factory=MachineConfig)
    EXTRACT_FEATURES: ExtractFeaturesConfig = spec(factory=ExtractFeaturesConfig, doc="engine_name=extract_features: what is written to <run dir>/features")
    CONVERTED_FROM_VISSL: ConvertedFromVisslConfig = spec(factory=ConvertedFromVisslConfig, doc="written by vissl-lite-convert: the VISSL source and its differences in numbers (explain prints them)")
