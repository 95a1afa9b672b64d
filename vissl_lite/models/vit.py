"""Vision Transformer trunk (Dosovitskiy et al. 2021) with DeiT's stochastic depth, as VISSL's
`vision_transformer` builds it: pre-norm blocks, a class token whose final LayerNorm'd state is
the trunk's feature, learned position embeddings, VISSL's init (trunc_normal std 0.02).

For an image of side S and patch side p the sequence is the class token followed by the
(S/p)^2 patch embeddings in row-major order, each plus its position embedding:

    x_0 = [cls; patch_embed(image)] + pos_embed,  then R register tokens inserted after cls
    x_i = x_{i-1}' + g2 * MLP(LN(x_{i-1}')),  x_{i-1}' = x_{i-1} + g1 * MHSA(LN(x_{i-1}))   (i = 1..L)
    features = LN(x_L)[class token]

g1, g2 are CaiT's layer scale (per-channel vectors `ls1.gamma`, `ls2.gamma`, started at
layer_scale_init; 1 without layer scale). Register tokens (Darcet et al. 2024, DINOv2's `_reg`
models) carry no position embedding, as in DINOv2: pos_embed covers the class token and the
patches only. Parameter names are timm's (`reg_token` is DINOv2's `register_tokens`).

Crops of another size (multi-crop's small crops, any input size) use the position embeddings
resized to their grid with bicubic interpolation (DINO's interpolate_pos_encoding); the class
token's is kept.
"""

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

# VISSL / DeiT's architectures; `digits` fits sklearn's 8x8 digits: 4 patches of 4x4 pixels (with
# 2x2 patches the class token hardly depends on the image at init: kNN 32% against 88%).
PRESETS: Dict[str, dict] = {
    "tiny": dict(image_size=224, patch_size=16, hidden_dim=192, num_layers=12, num_heads=3, mlp_dim=768),
    "small": dict(image_size=224, patch_size=16, hidden_dim=384, num_layers=12, num_heads=6, mlp_dim=1536),
    "base": dict(image_size=224, patch_size=16, hidden_dim=768, num_layers=12, num_heads=12, mlp_dim=3072),
    "digits": dict(image_size=8, patch_size=4, hidden_dim=96, num_layers=4, num_heads=4, mlp_dim=192),
}


class DropPath(nn.Module):
    """Stochastic depth per sample: x * Bernoulli(1 - p) / (1 - p) in training, x otherwise."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep


class Attention(nn.Module):
    """Multi-head self-attention: softmax(q k^T / sqrt(d_head)) v per head, then a projection."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, attention_dropout: float, dropout: float):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.attention_dropout = num_heads, attention_dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attention_dropout if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, d)))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class LayerScale(nn.Module):
    """x * gamma, one learned factor per channel (CaiT; timm's and DINOv2's `ls1` / `ls2`)."""

    def __init__(self, dim: int, init_value: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x):
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: x + DropPath(g1 * MHSA(LN(x))), then x + DropPath(g2 * MLP(LN(x)));
    g1, g2 are layer scales when layer_scale_init is set, else absent (factor 1)."""

    def __init__(self, dim, num_heads, mlp_dim, qkv_bias, dropout, attention_dropout, drop_path,
                 layer_scale_init: Optional[float] = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias, attention_dropout, dropout)
        self.ls1 = LayerScale(dim, layer_scale_init) if layer_scale_init is not None else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_dim, dropout)
        self.ls2 = LayerScale(dim, layer_scale_init) if layer_scale_init is not None else nn.Identity()
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches, each linearly embedded (a stride-p convolution)."""

    def __init__(self, patch_size: int, input_channels: int, dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(input_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, (H/p)(W/p), D], row-major


class VisionTransformer(nn.Module):
    """ViT trunk returning the class token's features, of size `out_dim` = hidden_dim.

    Stochastic depth grows linearly over the blocks, from 0 to drop_path_rate (DeiT's rule).
    """

    def __init__(self, image_size=224, patch_size=16, input_channels=3, hidden_dim=768, num_layers=12, num_heads=12,
                 mlp_dim=3072, dropout_rate=0.0, attention_dropout_rate=0.0, drop_path_rate=0.0, qkv_bias=True,
                 layer_scale_init: Optional[float] = None, num_register_tokens: int = 0):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.patch_size, self.out_dim, self.num_layers = patch_size, hidden_dim, num_layers
        self.grid = image_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, input_channels, hidden_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, hidden_dim))
        # DINOv2's registers: extra learned tokens after the class token, without position embedding.
        self.reg_token = nn.Parameter(torch.zeros(1, num_register_tokens, hidden_dim)) if num_register_tokens else None
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid ** 2 + 1, hidden_dim))
        self.pos_drop = nn.Dropout(dropout_rate)
        rates = torch.linspace(0, drop_path_rate, num_layers).tolist()
        self.blocks = nn.ModuleList(Block(hidden_dim, num_heads, mlp_dim, qkv_bias, dropout_rate,
                                          attention_dropout_rate, rate, layer_scale_init) for rate in rates)
        self.norm = nn.LayerNorm(hidden_dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.reg_token is not None:
            nn.init.normal_(self.reg_token, std=1e-6)  # DINOv2's and timm's start for registers
        self.apply(_init_weights)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "VisionTransformer":
        """PRESETS[name] with any argument replaced, e.g. from_preset("small", drop_path_rate=0.1)."""
        return cls(**{**PRESETS[name], **overrides})

    # Layer-wise LR decay asks the trunk for depths (vissl_lite.optim.layer_decay), as VISSL's
    # get_vit_param_depth: embeddings 0, block i i + 1, the final norm with the last block.
    def param_depth(self, name: str) -> int:
        top = name.split(".", 2)
        if top[0] in ("patch_embed", "cls_token", "reg_token", "pos_embed"):
            return 0
        if top[0] == "blocks":
            return int(top[1]) + 1
        if top[0] == "norm":
            return self.num_layers
        raise ValueError(f"VisionTransformer has no parameter {name!r}")

    def no_weight_decay(self) -> set:
        """Trunk-local names of the parameters DINO (and timm) never decay: the tokens."""
        return {"cls_token", "reg_token", "pos_embed"} if self.reg_token is not None else {"cls_token", "pos_embed"}

    def pos_embed_for(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """Position embeddings for a grid_h x grid_w patch grid: the learned ones at the training
        grid, bicubically resized ones otherwise (the class token's unchanged)."""
        if (grid_h, grid_w) == (self.grid, self.grid):
            return self.pos_embed
        return resize_pos_embed(self.pos_embed, (self.grid, self.grid), (grid_h, grid_w))

    def forward(self, x):
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image side {h}x{w} is not a multiple of the patch size {self.patch_size}")
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1)
        tokens = self.pos_drop(tokens + self.pos_embed_for(h // self.patch_size, w // self.patch_size))
        if self.reg_token is not None:
            tokens = torch.cat([tokens[:, :1], self.reg_token.expand(len(x), -1, -1), tokens[:, 1:]], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 0]


def grid_side(tokens: int) -> Optional[int]:
    """The side g of a square grid of `tokens` = g * g patches, None when `tokens` is not a square."""
    side = int(round(tokens ** 0.5))
    return side if side * side == tokens else None


def resize_pos_embed(pos_embed: torch.Tensor, old_grid, new_grid) -> torch.Tensor:
    """[1, 1 + h*w, D] position embeddings (class token first, then the h x w grid row-major) ->
    [1, 1 + h'*w', D]: the grid resized bicubically (align_corners false), the class token's kept."""
    (old_h, old_w), (new_h, new_w) = old_grid, new_grid
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
    dim = patch_pos.shape[-1]
    patch_pos = patch_pos.reshape(1, old_h, old_w, dim).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(patch_pos, size=(new_h, new_w), mode="bicubic", align_corners=False)
    return torch.cat([cls_pos, patch_pos.permute(0, 2, 3, 1).reshape(1, new_h * new_w, dim)], dim=1)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def build_vit(trunk_cfg) -> VisionTransformer:
    """MODEL.TRUNK.VISION_TRANSFORMERS (VISSL's keys): PRESET's architecture, any key that is
    set (not null) replacing the preset's value."""
    vit_cfg = trunk_cfg.VISION_TRANSFORMERS
    chosen = {"image_size": vit_cfg.IMAGE_SIZE, "patch_size": vit_cfg.PATCH_SIZE, "hidden_dim": vit_cfg.HIDDEN_DIM,
              "num_layers": vit_cfg.NUM_LAYERS, "num_heads": vit_cfg.NUM_HEADS, "mlp_dim": vit_cfg.MLP_DIM}
    return VisionTransformer.from_preset(
        vit_cfg.PRESET, **{k: v for k, v in chosen.items() if v is not None}, input_channels=vit_cfg.INPUT_CHANNELS,
        dropout_rate=vit_cfg.DROPOUT_RATE, attention_dropout_rate=vit_cfg.ATTENTION_DROPOUT_RATE,
        drop_path_rate=vit_cfg.DROP_PATH_RATE, qkv_bias=vit_cfg.QKV_BIAS, layer_scale_init=vit_cfg.LAYER_SCALE_INIT,
        num_register_tokens=vit_cfg.NUM_REGISTER_TOKENS)
