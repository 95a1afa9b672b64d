"""Images per CPU-second of the image-file pipeline against torchvision's way, in one process.

    python scripts/bench_data.py --make-photos 256 /tmp/photos      # JPEGs of ImageNet's size spread
    python scripts/bench_data.py --folder /tmp/photos --method dino [--workers 2] [--images 256]
    python scripts/bench_data.py --folder /tmp/photos --method simclr
    python scripts/bench_data.py --folder /tmp/photos --train 4     # + training images/s, folder vs memory

ours       vissl_lite: the DataLoader workers decode each file once (JPEG draft where every view keeps
           its resolution), cut every view's RandomResizedCrop box from the full image with one
           antialiased resize and flip it, and ship uint8; the main process then runs colour
           jitter, grayscale, blur, solarize and normalisation batched (SSLAugment, torch on CPU).
reference  torchvision's composition, written here with Pillow + torch (torchvision does not
           import here): per view in the worker RandomResizedCrop, RandomHorizontalFlip,
           RandomApply(ColorJitter, p=0.8) in a random order of the four PIL enhancements,
           RandomGrayscale, GaussianBlur (DINO's PIL ImageFilter blur), Solarization, ToTensor,
           Normalize; the loader collates float32 views.
Methods    dino: 2 x 224 (scale 0.4-1) + 10 x 96 (scale 0.05-0.4), bicubic, jitter (0.4, 0.4, 0.2|0.4, 0.1),
           blur p 1.0 / 0.1 / 0.5, solarize p 0 / 0.2 / 0 (main_dino.py's DataAugmentationDINO);
           simclr: 2 x 224 (scale 0.08-1), bilinear, jitter (0.8, 0.8, 0.8, 0.2), blur p 0.5.

CPU time is every process's: getrusage of this process (all its threads) plus its reaped
children (the workers are joined before each reading). The last line is
`bench_data <method>: X images per CPU-second (reference Y, ratio Z)`.

--train K adds training images per second (wall) of pretrain/simclr/simclr_folder_small's model at
224 pixels (its narrow ResNet-18, the standard stem, SGD + LARC), K batches per round: from the
folder (views cut in the workers, photometric ops in this process) and from the same images held in
memory (decoded once, shorter side resized to 256, centre 256 x 256; cropped and augmented batched
in this process, as the in-memory sources are).
"""

import argparse
import math
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import OmegaConf  # noqa: E402

from vissl_lite.config.schema import TransformsConfig  # noqa: E402
from vissl_lite.data.augment import SSLAugment  # noqa: E402
from vissl_lite.data.crops import ViewSpec  # noqa: E402
from vissl_lite.data.files import image_folder  # noqa: E402
from vissl_lite.data.folder import EvalViews, TrainViews  # noqa: E402
from vissl_lite.data.loader import FolderLoader  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
METHODS = {
    # views, interpolation, jitter (b, c, s, h), blur p per view, solarize p per view
    "dino": ([(224, (0.4, 1.0))] * 2 + [(96, (0.05, 0.4))] * 10, "bicubic", (0.4, 0.4, 0.2, 0.1),
             [1.0, 0.1] + [0.5] * 10, [0.0, 0.2] + [0.0] * 10),
    "simclr": ([(224, (0.08, 1.0))] * 2, "bilinear", (0.8, 0.8, 0.8, 0.2), [0.5, 0.5], [0.0, 0.0]),
}


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# ----------------------------------------------------------------------------- photos


def make_photos(n: int, out: Path) -> None:
    """N JPEGs, sides 240-800, aspect ratio 0.6-1.6 (ImageNet's spread), smooth content with grain
    (random noise would decode far slower than photographs do)."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        aspect = math.exp(rng.uniform(math.log(0.6), math.log(1.6)))
        longer = int(rng.integers(240, 801))
        w, h = (longer, round(longer / aspect)) if aspect >= 1 else (round(longer * aspect), longer)
        w, h = max(240, min(800, w)), max(240, min(800, h))
        coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
        grain = rng.normal(0, 6, (h, w, 3))
        pixels = np.clip(np.asarray(coarse, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(out / f"photo_{i:05d}.jpg", quality=90)
    print(f"wrote {n} JPEGs to {out}")


# ----------------------------------------------------------------------------- the reference


def rrc_params(width, height, scale, ratio=(3 / 4, 4 / 3)):
    """torchvision's RandomResizedCrop.get_params (python's random here): (left, top, w, h)."""
    area = width * height
    for _ in range(10):
        target = area * random.uniform(*scale)
        aspect = math.exp(random.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return random.randint(0, width - w), random.randint(0, height - h), w, h
    w, h = (width, height)
    if width / height < ratio[0]:
        h = int(round(width / ratio[0]))
    elif width / height > ratio[1]:
        w = int(round(height * ratio[1]))
    return (width - w) // 2, (height - h) // 2, w, h


def color_jitter(img, b, c, s, h):
    """torchvision's ColorJitter on a PIL image: the four adjustments in a random order."""
    for op in torch.randperm(4).tolist():
        if op == 0:
            img = ImageEnhance.Brightness(img).enhance(random.uniform(max(0, 1 - b), 1 + b))
        elif op == 1:
            img = ImageEnhance.Contrast(img).enhance(random.uniform(max(0, 1 - c), 1 + c))
        elif op == 2:
            img = ImageEnhance.Color(img).enhance(random.uniform(max(0, 1 - s), 1 + s))
        else:  # F_pil.adjust_hue: shift the H channel of HSV
            hue, sat, val = img.convert("HSV").split()
            np_h = np.array(hue, dtype=np.uint8)
            with np.errstate(over="ignore"):
                np_h += np.uint8(int(random.uniform(-h, h) * 255) % 256)
            img = Image.merge("HSV", (Image.fromarray(np_h, "L"), sat, val)).convert("RGB")
    return img


class ReferenceViews(torch.utils.data.Dataset):
    def __init__(self, paths, method):
        self.paths = paths
        self.views, interpolation, self.jitter, self.blur_p, self.solarize_p = METHODS[method]
        self.resample = Image.BICUBIC if interpolation == "bicubic" else Image.BILINEAR
        self.mean, self.std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        with open(self.paths[index], "rb") as f:  # torchvision's pil_loader
            img = Image.open(f).convert("RGB")
        out = []
        for k, (size, scale) in enumerate(self.views):
            left, top, w, h = rrc_params(img.width, img.height, scale)
            view = img.crop((left, top, left + w, top + h)).resize((size, size), self.resample)
            if random.random() < 0.5:
                view = view.transpose(Image.FLIP_LEFT_RIGHT)
            if random.random() < 0.8:
                view = color_jitter(view, *self.jitter)
            if random.random() < 0.2:  # F_pil.to_grayscale(num_output_channels=3)
                gray = np.array(view.convert("L"), dtype=np.uint8)
                view = Image.fromarray(np.dstack([gray, gray, gray]), "RGB")
            if random.random() < self.blur_p[k]:
                view = view.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0)))
            if random.random() < self.solarize_p[k]:
                view = ImageOps.solarize(view)
            tensor = torch.from_numpy(np.array(view, np.uint8, copy=True)).permute(2, 0, 1).contiguous().float().div(255)
            out.append(tensor.sub_(self.mean).div_(self.std))
        return out


def run_reference(paths, method, workers, batch):
    loader = torch.utils.data.DataLoader(ReferenceViews(paths, method), batch_size=batch, num_workers=workers,
                                         worker_init_fn=lambda i: random.seed(1000 + i))
    count = 0
    for views in loader:
        count += len(views[0])
    return count


# ----------------------------------------------------------------------------- ours


def our_augment(method):
    views, interpolation, (b, c, s, h), blur, solarize = METHODS[method]
    strength = b / 0.8  # SSLAugment's SimCLR parametrisation: (0.8s, 0.8s, 0.8s, 0.2s)
    t = TransformsConfig(CROP_SIZE=224, COLOR_DISTORTION_STRENGTH=strength, COLOR_JITTER_P=0.8, GRAYSCALE_P=0.2,
                         BLUR_P=blur[0], SOLARIZE_P=0.0, LOCAL_CROPS_NUMBER=len(views) - 2, LOCAL_CROP_SIZE=96,
                         CROP_BLUR_P=blur[:3] if method == "dino" else [], CROP_SOLARIZE_P=solarize[:3] if method == "dino" else [],
                         MEAN=list(MEAN), STD=list(STD), INTERPOLATION=interpolation)
    return SSLAugment(OmegaConf.structured(t), 3), [ViewSpec(size, scale) for size, scale in views], interpolation


def run_ours(files, method, workers, batch, epoch):
    augment, specs, interpolation = our_augment(method)
    train = TrainViews(files, 3, specs, 0.5, seed=0, rank=0, interpolation=interpolation)
    loader = FolderLoader(train, workers, False)
    generator = torch.Generator().manual_seed(0)
    indices = list(range(len(files)))
    requests = [[(epoch, i) for i in indices[s: s + batch]] for s in range(0, len(indices), batch)]
    count = 0
    for views, labels, _, _ in loader.run(requests):
        if method == "dino":
            augment.multi_crop(views, 2, generator)
        else:
            augment(views, generator), augment(views, generator)
        count += len(labels)
    loader.close()
    return count


# ----------------------------------------------------------------------------- training


def training_setup(folder: str, workers: int, batch: int):
    from vissl_lite import api
    from vissl_lite.engine.method import build_method

    cfg = api.resolve(api.compose([
        "config=pretrain/simclr/simclr_folder_small", f"DATA.TRAIN.DATA_PATHS=[{folder}]", f"DATA.TEST.DATA_PATHS=[{folder}]",
        "DATA.TRAIN.TRANSFORMS.CROP_SIZE=224", "DATA.TRAIN.TRANSFORMS.RESIZE_SIZE=null",
        "DATA.TRAIN.TRANSFORMS.CROP_SCALE=[0.08,1.0]",
        "MODEL.TRUNK.RESNETS.SMALL_IMAGE_STEM=false", f"DATA.TRAIN.BATCHSIZE_PER_REPLICA={batch}",
        f"DATA.TRAIN.NUM_DATALOADER_WORKERS={workers}"]))
    torch.manual_seed(0)
    model = api.build_model(cfg)
    method = build_method(cfg, model, steps_per_epoch=100, augment=SSLAugment(cfg.DATA.TRAIN.TRANSFORMS, 3))
    return cfg, model, method, api.build_optim_wrapper(cfg, model, steps_per_epoch=100)


def in_memory(files, side=256):
    """The images as an in-memory source holds them: float [N, 3, side, side] in [0, 1] (the
    evaluation view: shorter side resized to `side`, centre square)."""
    views = EvalViews(files, 3, side, side)
    return torch.stack([views[i][0] for i in range(len(views))]).float().div_(255)


def train_rounds(folder_path, files, workers, batch, steps, rounds):
    """Training images per second (wall) from the folder and from memory, ABBA."""
    from vissl_lite.data.build import crop_plan

    cfg, model, method, wrapper = training_setup(folder_path, workers, batch)
    t = cfg.DATA.TRAIN.TRANSFORMS
    cutter = TrainViews(files, 3, crop_plan(method, t), t.HFLIP_P, seed=0, rank=0, interpolation=t.INTERPOLATION)
    loader = FolderLoader(cutter, workers, False)
    memory = in_memory(files)
    labels = torch.zeros(batch, dtype=torch.int64)
    generator = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()

    def step(images):
        loss, _ = method.forward(model, images, labels[: len(images)], generator)
        wrapper.update_params(loss)

    def folder(epoch):
        requests = [[(epoch, (s * batch + i) % len(files)) for i in range(batch)] for s in range(steps)]
        for views, _, _, _ in loader.run(requests):
            step(views)

    def memory_pass(epoch):
        torch.set_num_threads(threads)  # the folder loader caps the main process's threads beside its workers
        order = torch.randperm(len(memory), generator=torch.Generator().manual_seed(epoch))
        for s in range(steps):
            step(memory[order[(s * batch + torch.arange(batch)) % len(memory)]])

    step(memory[:batch])  # first-call costs out of the measurement
    totals = {"folder": 0.0, "memory": 0.0}
    for r in range(rounds):
        for name in (["folder", "memory"] if r % 2 == 0 else ["memory", "folder"]):
            start = time.perf_counter()
            folder(r) if name == "folder" else memory_pass(r)
            totals[name] += time.perf_counter() - start
    loader.close()
    per_second = {k: rounds * steps * batch / v for k, v in totals.items()}
    print(f"training (simclr_folder_small's model at 224 px, batch {batch}, {workers} workers): from the folder "
          f"{per_second['folder']:.1f} images/s, from memory {per_second['memory']:.1f} images/s "
          f"(ratio {per_second['folder'] / per_second['memory']:.2f})")


def measure(name, fn):
    cpu, wall = cpu_seconds(), time.perf_counter()
    count = fn()
    cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
    print(f"  {name:9s} {count} images  {cpu:7.2f} CPU-s  {wall:7.2f} s wall  {count / cpu:7.2f} images per CPU-second")
    return count, cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--method", choices=sorted(METHODS), default="dino")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--images", type=int, default=256,
                        help="images per measurement (the folder's first N; each run also pays ~0.1 CPU-s to start its workers)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="ours, reference, reference, ours, ... (ABBA)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process (its ops are batched)")
    parser.add_argument("--make-photos", nargs=2, metavar=("N", "DIR"))
    parser.add_argument("--train", type=int, default=0, metavar="K",
                        help="also training images/s, folder vs memory, K batches per round")
    args = parser.parse_args(argv)
    if args.make_photos:
        make_photos(int(args.make_photos[0]), Path(args.make_photos[1]))
        if args.folder is None:
            return 0
    if args.folder is None:
        parser.error("--folder DIR is needed (or --make-photos N DIR to write one)")
    torch.set_num_threads(args.threads)
    files = image_folder(str(args.folder)).first(args.images)
    paths = [str(p) for p in files.paths]
    print(f"bench_data: {len(files)} images from {args.folder}, method {args.method}, {args.workers} workers, "
          f"batch {args.batch}, main process {args.threads} thread(s)")
    totals = {"ours": [0, 0.0], "reference": [0, 0.0]}
    order = []
    for r in range(args.rounds):
        order += ["ours", "reference"] if r % 2 == 0 else ["reference", "ours"]
    for r, name in enumerate(order):
        fn = (lambda: run_ours(files, args.method, args.workers, args.batch, r)) if name == "ours" else \
            (lambda: run_reference(paths, args.method, args.workers, args.batch))
        count, cpu = measure(name, fn)
        totals[name][0] += count
        totals[name][1] += cpu
    if args.train:
        train_rounds(args.folder, files, args.workers, args.batch, args.train, args.rounds)
    ours, ref = (totals[k][0] / totals[k][1] for k in ("ours", "reference"))
    print(f"bench_data {args.method}: {ours:.2f} images per CPU-second (reference {ref:.2f}, ratio {ours / ref:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
