"""Write the embedded digits as image folders, the way photos come: OUT/train/<class>/ and
OUT/test/<class>/ (the same 1437 / 360 split as DATA_SOURCES=[digits]), each image 24-72 px on
its longer side with an aspect ratio in [0.6, 1.6] (the digit centred, the margins varying), in
mixed formats and modes (PNG RGB / L / RGBA / P, JPEG, BMP, GIF, WebP, TIFF). Deterministic.

    python -m vissl_lite.data.write_digits OUT
    python run.py config=pretrain/simclr/simclr_folder_small \\
        DATA.TRAIN.DATA_PATHS=[OUT/train] DATA.TEST.DATA_PATHS=[OUT/test]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

# (extension, Pillow mode, save options): cycled over the images.
FORMATS = (("png", "RGB", {}), ("jpg", "RGB", {"quality": 90}), ("png", "L", {}), ("bmp", "RGB", {}),
           ("png", "RGBA", {}), ("gif", "P", {}), ("webp", "RGB", {"quality": 90}), ("tif", "RGB", {}))
SIDES = (24, 72)
ASPECT = (0.6, 1.6)
SEED = 0


def render(digit: np.ndarray, rng: np.random.Generator):
    """An 8x8 digit in [0, 16] -> a smooth RGB image: dark ink on light paper (random gray levels,
    slightly tinted), the digit a square of 22-56 px (bicubic) centred on a canvas with
    margins that give the image a random aspect ratio, 24-72 px on its longer side."""
    from PIL import Image

    side = int(rng.integers(SIDES[0] - 2, SIDES[1] - 15))
    aspect = float(np.exp(rng.uniform(np.log(ASPECT[0]), np.log(ASPECT[1]))))
    margin = int(rng.integers(2, 9))
    width, height = side + margin, side + margin
    if aspect >= 1:
        width = min(SIDES[1], round(height * aspect))
    else:
        height = min(SIDES[1], round(width / aspect))
    strokes = Image.fromarray((digit / 16.0 * 255).astype(np.uint8), "L").resize((side, side), Image.BICUBIC)
    canvas = Image.new("L", (width, height), 0)
    canvas.paste(strokes, ((width - side) // 2, (height - side) // 2))
    amount = np.asarray(canvas, dtype=np.float32)[:, :, None] / 255
    paper, ink = rng.uniform(190, 255), rng.uniform(0, 70)  # gray levels, slightly tinted per channel
    background, colour = paper - rng.uniform(0, 12, 3), ink + rng.uniform(0, 12, 3)
    return Image.fromarray(np.round(background * (1 - amount) + colour * amount).astype(np.uint8), "RGB")


def write(out: Path) -> dict:
    """Write both splits; returns {split: number of images}."""
    from .sources import DIGITS_TEST, _digits_order
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = _digits_order()
    rng = np.random.default_rng(SEED)
    counts = {}
    for split, index in (("train", order[DIGITS_TEST:]), ("test", order[:DIGITS_TEST])):
        for n, i in enumerate(index):
            ext, mode, options = FORMATS[n % len(FORMATS)]
            image = render(digits.images[i], rng)
            image = image.convert(mode) if mode != "P" else image.quantize(64)
            folder = out / split / str(digits.target[i])
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{i:04d}.{ext}", **options)
        counts[split] = len(index)
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write train/ and test/ into (created)")
    args = parser.parse_args(argv)
    if (args.out / "train").exists() or (args.out / "test").exists():
        print(f"write_digits: {args.out} already holds train/ or test/; choose an empty folder", file=sys.stderr)
        return 2
    counts = write(args.out)
    print(f"wrote {counts['train']} train and {counts['test']} test images to {args.out}/train and {args.out}/test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
