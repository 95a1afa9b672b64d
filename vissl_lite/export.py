"""Export a trunk for downstream code: `python -m vissl_lite.export SOURCE --format timm|torchvision|vissl_lite
--output FILE [--part trunk|teacher|student]` (also the `vissl-lite-export` console script).

SOURCE is a vissl_lite checkpoint or a file in any layout of models/layouts.py. FILE gets the
trunk's state dict in the target library's names (safetensors for a .safetensors name, torch.save
otherwise) and FILE's stem + .json beside it: the architecture, image size, normalisation and
where the weights came from. `--part teacher` takes the EMA teacher (DINO) or key encoder (MoCo).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

import yaml

from .models.layouts import EXPORT_FORMATS, LAYOUTS, State, read_trunk
from .models.resnet import LAYOUTS as RESNET_DEPTHS
from .engine.checkpoint import read_checkpoint_content
from .models.weight_files import SUFFIXES, write_weights

# What DINO, DINOv2, MoCo, SwAV, timm's and torchvision's ImageNet models are trained with.
IMAGENET_NORMALISATION = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
PART_OPTIONS = {"trunk": "auto", "teacher": "teacher", "student": "student"}
_TIMM_VIT_SIZES = {(192, 12): "vit_tiny", (384, 12): "vit_small", (768, 12): "vit_base", (1024, 24): "vit_large"}


def describe_trunk(trunk: State) -> dict:
    """The architecture as far as the tensors tell it (attention heads they do not tell)."""
    if "pos_embed" in trunk:
        patch = trunk["patch_embed.proj.weight"].shape[-1]
        grid = int(round((trunk["pos_embed"].shape[1] - 1) ** 0.5))
        layers = len({k.split(".")[1] for k in trunk if k.startswith("blocks.")})
        hidden = trunk["cls_token"].shape[-1]
        registers = trunk["reg_token"].shape[1] if "reg_token" in trunk else 0
        arch = {"name": "vision_transformer", "patch_size": patch, "hidden_dim": hidden, "num_layers": layers,
                "mlp_dim": trunk["blocks.0.mlp.fc1.weight"].shape[0], "input_channels": trunk["patch_embed.proj.weight"].shape[1],
                "layer_scale": "blocks.0.ls1.gamma" in trunk, "num_register_tokens": registers,
                "image_size": grid * patch}
        size = _TIMM_VIT_SIZES.get((hidden, layers))
        if size:
            dinov2 = arch["layer_scale"] and patch == 14
            arch["timm_model"] = (f"{size}_patch{patch}_{'reg' + str(registers) + '_' if registers else ''}dinov2"
                                  if dinov2 else f"{size}_patch{patch}_{grid * patch}")
        return arch
    counts = [len({k.split(".")[1] for k in trunk if k.startswith(f"layer{i}.")}) for i in range(1, 5)]
    bottleneck = "layer1.0.conv3.weight" in trunk
    depth = next((d for d, (block, c) in RESNET_DEPTHS.items()
                  if c == counts and (block.expansion == 4) == bottleneck), None)
    width = trunk["conv1.weight"].shape[0]
    arch = {"name": "resnet", "depth": depth, "stem_width": width, "small_image_stem": trunk["conv1.weight"].shape[-1] == 3,
            "input_channels": trunk["conv1.weight"].shape[1]}
    if depth is not None and width == 64 and not arch["small_image_stem"]:
        arch["torchvision_model"] = arch["timm_model"] = f"resnet{depth}"
    return arch


def _run_config(content) -> Optional[dict]:
    """The config a vissl_lite checkpoint was trained with (saved as YAML text), if any."""
    text = content.get("config") if isinstance(content, dict) else None
    return yaml.safe_load(text) if isinstance(text, str) else None


def export(source, output, fmt: str, part: str = "trunk", source_format: str = "auto") -> dict:
    """Write the trunk of `source` to `output` in `fmt`'s names and the JSON beside it; return
    the JSON's content. ValueError on anything that cannot be exported."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"--format {fmt!r}: one of {', '.join(EXPORT_FORMATS)}")
    if part not in PART_OPTIONS:
        raise ValueError(f"--part {part!r}: one of {', '.join(PART_OPTIONS)}")
    source, output = Path(source), Path(output)
    content = read_checkpoint_content(source)
    layout, trunk, _ = read_trunk(content, source_format, PART_OPTIONS[part])
    tensors = LAYOUTS[fmt].write(trunk)
    config = _run_config(content)
    info = {
        "format": fmt,
        "architecture": describe_trunk(trunk),
        "image_size": None,
        "normalisation": None,
        "source": {"file": str(source), "layout": layout.name, "part": part},
        "tensors": len(tensors),
    }
    if config is not None:
        model, transforms = config["MODEL"]["TRUNK"], config["DATA"]["TRAIN"]["TRANSFORMS"]
        section = {"resnet": "RESNETS", "vision_transformer": "VISION_TRANSFORMERS"}[model["NAME"]]
        info["architecture"]["config"] = {"NAME": model["NAME"], section: model[section]}
        info["image_size"] = transforms["CROP_SIZE"]
        info["normalisation"] = {"mean": transforms["MEAN"], "std": transforms["STD"],
                                 "from": "DATA.TRAIN.TRANSFORMS of the run"}
        info["source"]["step"] = content.get("step")
    else:
        info["image_size"] = info["architecture"].get("image_size")
        info["normalisation"] = {**IMAGENET_NORMALISATION, "from": f"assumed: ImageNet's, what {layout.name} models use"}
    write_weights(output, tensors, metadata={"format": fmt, "source": str(source)})
    sidecar_path(output).write_text(json.dumps(info, indent=2) + "\n")
    return info


def sidecar_path(output: Path) -> Path:
    """model.safetensors -> model.json, trunk.pth.tar -> trunk.json."""
    name = output.name
    suffix = next(s for s in sorted(SUFFIXES, key=len, reverse=True) if name.lower().endswith(s))
    return output.with_name(name[: -len(suffix)] + ".json")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="vissl-lite-export",
        description="Write a checkpoint's trunk with timm's, torchvision's or vissl_lite's names, and a JSON "
                    "beside it (architecture, image size, normalisation, source).")
    parser.add_argument("source", help="a vissl_lite checkpoint or any file MODEL.WEIGHTS_INIT reads")
    parser.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="the names to write")
    parser.add_argument("--output", required=True, type=Path,
                        help=f"the file to write ({' '.join(SUFFIXES)}; .safetensors writes safetensors)")
    parser.add_argument("--part", default="trunk", choices=tuple(PART_OPTIONS),
                        help="trunk: the trained model's (a DINO file: its teacher); teacher: the EMA teacher (DINO) "
                             "or key encoder (MoCo); student: DINO's student")
    parser.add_argument("--source-format", default="auto", choices=("auto",) + tuple(LAYOUTS),
                        help="the source's layout (default: recognised from its keys)")
    args = parser.parse_args(argv)
    try:
        info = export(args.source, args.output, args.format, args.part, args.source_format)
    except (ValueError, OSError) as err:
        print(f"vissl-lite-export: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({info['tensors']} tensors, {args.format} names, from a {info['source']['layout']} "
          f"file) and {sidecar_path(args.output)}")
    return 0


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
