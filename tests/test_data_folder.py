"""Image files as they come: listing (ImageFolder, VISSL's file list, manifests), every Pillow mode,
EXIF orientation, broken files and bombs, views from the full image, workers that do not change the
crops, and a folder run killed and rerun that ends bitwise identical."""

import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SigtermAt
from vissl_lite.data.crops import ViewSpec
from vissl_lite.data.decode import draft_factor
from vissl_lite.data.files import file_list, image_folder, manifest
from vissl_lite.data.folder import EvalViews, TrainViews
from vissl_lite.data.loader import FolderLoader
from vissl_lite.errors import ConfigError


def save(path, array, mode=None, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = array if isinstance(array, Image.Image) else Image.fromarray(array, mode)
    img.save(path, **options)
    return path


def solid(w, h, colour):
    return np.full((h, w, 3), colour, dtype=np.uint8)


def full_view(path, channels=3, size=8):
    """The evaluation view of a file whose shorter side is `size` (resize to it, centre crop)."""
    from vissl_lite.data.files import ImageFiles

    files = ImageFiles(np.array([str(path)]), np.array([0]))
    item = EvalViews(files, channels, size, size).read(0)
    assert item.view is not None, item.unreadable
    return item.view.permute(1, 2, 0).numpy()


# ----------------------------------------------------------------------------- listing


def test_image_folder_classes_recursion_extensions_hidden(tmp_path):
    for rel in ("b/x.JPG", "b/deep/er/y.Png", "a/z.jpeg", "a/.hidden.png", "a/.cache/w.png", "c/notes.txt",
                "c/photo.webp", ".git/q.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    files = image_folder(str(tmp_path))
    assert files.classes == ["a", "b", "c"]  # sorted, the hidden .git left out
    assert [os.path.relpath(p, tmp_path) for p in files.paths] == ["a/z.jpeg", "b/x.JPG", "b/deep/er/y.Png",
                                                                   "c/photo.webp"]
    assert files.labels.tolist() == [0, 1, 1, 2]
    flat = tmp_path / "flat"
    for name in ("2.png", "1.JPG", "readme.md"):
        (flat / name).parent.mkdir(exist_ok=True)
        (flat / name).write_bytes(b"")
    files = image_folder(str(flat))
    assert [os.path.basename(p) for p in files.paths] == ["1.JPG", "2.png"] and files.labels.tolist() == [-1, -1]
    assert not files.labelled


def test_file_list_and_manifest(tmp_path):
    np.save(tmp_path / "paths.npy", np.array(["img/a.png", "/abs/b.png"]))
    np.save(tmp_path / "labels.npy", np.array([3, 1]))
    files = file_list(str(tmp_path / "paths.npy"), str(tmp_path / "labels.npy"))
    assert files.paths.tolist() == [str(tmp_path / "img/a.png"), "/abs/b.png"] and files.labels.tolist() == [3, 1]
    assert file_list(str(tmp_path / "paths.npy")).labels.tolist() == [-1, -1]
    np.save(tmp_path / "short.npy", np.array([1]))
    with pytest.raises(ValueError, match="2 integer labels"):
        file_list(str(tmp_path / "paths.npy"), str(tmp_path / "short.npy"))
    (tmp_path / "m.csv").write_text("path,label\nx/1.png,cat\n\n/y/2.png,dog\nx/3.png,cat\n")
    files = manifest(str(tmp_path / "m.csv"))
    assert files.classes == ["cat", "dog"] and files.labels.tolist() == [0, 1, 0]
    assert files.paths.tolist() == [str(tmp_path / "x/1.png"), "/y/2.png", str(tmp_path / "x/3.png")]
    (tmp_path / "m.txt").write_text("a.png,7\nb.png,2\n")
    assert manifest(str(tmp_path / "m.txt")).labels.tolist() == [7, 2]
    (tmp_path / "bad.txt").write_text("a.png,1\nb.png\n")
    with pytest.raises(ValueError, match="line 2"):
        manifest(str(tmp_path / "bad.txt"))


# ----------------------------------------------------------------------------- modes, formats, EXIF


def test_every_mode_to_rgb_and_l(tmp_path):
    cases = {  # file -> expected RGB value of every pixel, by hand
        "l.png": (Image.fromarray(np.full((8, 8), 100, np.uint8), "L"), (100, 100, 100)),
        "bilevel.png": (Image.new("1", (8, 8), 1), (255, 255, 255)),
        "la_clear.png": (Image.new("LA", (8, 8), (0, 0)), (255, 255, 255)),  # transparent: the white behind
        "la_opaque.png": (Image.new("LA", (8, 8), (60, 255)), (60, 60, 60)),
        # 50% red over white: 255 x a + 255 x (1 - a) = 255 for red, 0 x a + 255 x (1 - a) = 127 for green, blue
        "rgba_half.png": (Image.new("RGBA", (8, 8), (255, 0, 0, 128)), (255, 127, 127)),
        "cmyk.tif": (Image.new("CMYK", (8, 8), (255, 0, 0, 0)), (0, 255, 255)),  # full cyan
        "cmyk.jpg": (Image.new("CMYK", (8, 8), (0, 0, 0, 0)), (255, 255, 255)),
        # 16 bits: v x 255 / 65535 rounded (Pillow's own convert would clip 40000 to 255)
        "sixteen.png": (Image.fromarray(np.full((8, 8), 40000, np.uint16)), (156, 156, 156)),
        "float.tif": (Image.fromarray(np.full((8, 8), 0.5, np.float32), "F"), (128, 128, 128)),
        "ycbcr.jpg": (Image.new("RGB", (8, 8), (0, 0, 255)), (0, 0, 254)),
    }
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    cases["p.png"] = (palette, (10, 200, 30))
    clear = palette.copy()
    clear.info["transparency"] = 1
    cases["p_transparent.gif"] = (clear, (255, 255, 255))
    for name, (img, expected) in cases.items():
        options = {"transparency": 1} if name.endswith(".gif") else {}
        if name == "ycbcr.jpg":
            options = {"quality": 100, "subsampling": 0}
        save(tmp_path / name, img, **options)
        got = full_view(tmp_path / name)
        assert got.shape == (8, 8, 3), name
        assert np.abs(got.astype(int) - expected).max() <= (2 if name.endswith(".jpg") else 0), (name, got[0, 0])
    # one channel: ITU-R 601 luma of pure red, 0.299 x 255 = 76.2 -> 76; 16 bits as above
    save(tmp_path / "red.png", solid(8, 8, (255, 0, 0)))
    assert (full_view(tmp_path / "red.png", channels=1) == 76).all()
    assert (full_view(tmp_path / "sixteen.png", channels=1) == 156).all()


def test_exif_orientation_is_applied(tmp_path):
    picture = np.concatenate([solid(20, 16, (255, 0, 0)), solid(20, 16, (0, 0, 255))], axis=1)  # 40 x 16: red | blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display": the left edge (red) ends on top
    for name in ("rotated.png", "rotated.jpg"):
        save(tmp_path / name, picture, exif=exif, **({"quality": 95} if name.endswith("jpg") else {}))
        view = full_view(tmp_path / name, size=16).astype(int)  # shown as 16 x 40, resized to 16 x 40, centre 16 x 16
        shown = full_view_uncropped(tmp_path / name)
        assert shown.shape[:2] == (40, 16), name
        assert (shown[:10, :, 0] > 200).all() and (shown[:10, :, 2] < 60).all(), name  # top: red
        assert (shown[-10:, :, 2] > 200).all() and (shown[-10:, :, 0] < 60).all(), name  # bottom: blue
        assert view.shape == (16, 16, 3)


def full_view_uncropped(path):
    from vissl_lite.data.folder import read_full_image

    return read_full_image(str(path), 3)


# ----------------------------------------------------------------------------- geometry


def test_a_four_to_one_image_is_seen_to_both_ends(tmp_path):
    picture = solid(400, 100, (128, 128, 128))
    picture[:, :40] = (255, 0, 0)
    picture[:, -40:] = (0, 0, 255)
    files = image_folder(str(save(tmp_path / "pano" / "x.png", picture).parent))
    views = TrainViews(files, 3, [ViewSpec(16, (0.08, 1.0))], 0.5, seed=0, rank=0)
    red = blue = 0
    for epoch in range(200):
        view = views[(epoch, 0)].views[0].numpy().astype(int)
        red += (view[0] > 200).mean() > 0.05
        blue += (view[2] > 200).mean() > 0.05
    # about 10% of the boxes reach 5% into either end (by simulation of the sampling); a centre
    # square (the old load-time crop) never shows either
    assert red >= 8 and blue >= 8, (red, blue)


def test_views_are_torchvision_crops_of_the_full_image(tmp_path):
    """Without a JPEG draft, a view is the box, resized, then flipped: within one grey level of
    Pillow's crop + resize (torchvision's resized_crop on a PIL image); the evaluation view is
    Resize(shorter) + CenterCrop."""
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 255, (90, 130, 3), dtype=np.uint8)
    path = save(tmp_path / "c" / "x.png", picture)
    files = image_folder(str(path.parents[1]))
    from vissl_lite.data.crops import draw_views, image_stream

    specs = [ViewSpec(24, (0.08, 1.0)), ViewSpec(12, (0.05, 0.4))]
    item = TrainViews(files, 3, specs, 0.5, seed=5, rank=0)[(3, 0)]
    boxes = draw_views(130, 90, specs, 0.5, image_stream(5, 3, 0, 0))
    for view, box, spec in zip(item.views, boxes, specs):
        expected = Image.fromarray(picture).crop((box.left, box.top, box.right, box.bottom))
        expected = expected.resize((spec.size, spec.size), Image.BILINEAR)
        if box.flip:
            expected = expected.transpose(Image.FLIP_LEFT_RIGHT)
        difference = view.permute(1, 2, 0).numpy().astype(int) - np.asarray(expected, dtype=int)
        assert np.abs(difference).max() <= 1 and np.abs(difference).mean() < 0.05
    # Resize(40): 40 x int(40 * 130 / 90) = 57; CenterCrop(32) at (round(12.5), round(4.0)) = (12, 4)
    resized = Image.fromarray(picture).resize((57, 40), Image.BILINEAR).crop((12, 4, 44, 36))
    got = EvalViews(files, 3, 32, 40).read(0).view.permute(1, 2, 0).numpy().astype(int)
    assert np.abs(got - np.asarray(resized)).max() <= 1


def test_jpeg_draft_keeps_at_least_the_output_resolution(tmp_path):
    from vissl_lite.data.crops import Box
    from vissl_lite.data.decode import decode

    assert draft_factor([Box(0, 0, 400, 300), Box(0, 0, 100, 120)], [96, 48]) == pytest.approx(100 / 48)
    x = np.linspace(0, 255, 800)
    smooth = np.stack(np.broadcast_arrays(x[None, :], x[:600, None] * 0 + 128, x[None, ::-1]), -1).astype(np.uint8)
    path = str(save(tmp_path / "big.jpg", smooth, quality=95))
    seen = {}
    original = Image.Image.resize

    def spy(img, size, *args, **kwargs):
        seen["decoded"] = img.size
        return original(img, size, *args, **kwargs)

    Image.Image.resize = spy
    try:
        view = decode(path, 3, lambda w, h: ([Box(0, 0, 800, 600)], [96]), "bilinear")[0]
    finally:
        Image.Image.resize = original
    # the box's shorter side 600 / 96 = 6.25: the largest power-of-two reduction within it is 4
    assert seen["decoded"] == (200, 150)
    reference = np.asarray(Image.open(path).convert("RGB").resize((96, 96), Image.BILINEAR)).astype(int)
    assert np.abs(view.permute(1, 2, 0).numpy().astype(int) - reference).mean() < 2


# ----------------------------------------------------------------------------- broken files


def broken_files(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image")
    buffer = io.BytesIO()
    Image.fromarray(solid(64, 64, (1, 2, 3))).save(buffer, "JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return ["empty.png", "text.jpg", "truncated.jpg"]


def test_each_broken_file_is_skipped_and_reported(tmp_path, monkeypatch):
    names = broken_files(tmp_path / "img" / "a")
    save(tmp_path / "img" / "a" / "z_good.png", solid(10, 10, (9, 9, 9)))
    save(tmp_path / "img" / "a" / "bomb.png", solid(40, 40, (5, 5, 5)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 40 x 40 = 1600 pixels: refused as a bomb
    files = image_folder(str(tmp_path / "img"))
    names = sorted(names + ["bomb.png"])
    assert [os.path.basename(p) for p in files.paths] == names + ["z_good.png"]
    views = TrainViews(files, 3, [ViewSpec(4, (0.5, 1.0))], 0.0, seed=0, rank=0)
    item = views[(0, 0)]  # every file before the good one is broken: it takes their places
    assert item.views is not None and int(item.views[0].float().mean()) == 9
    why = {os.path.basename(path): reason for _, path, reason in item.unreadable}
    assert sorted(why) == names and "DecompressionBomb" in why["bomb.png"]
    evals = EvalViews(files, 3, 4, 4)
    assert [evals[i][0] is None for i in range(len(files))] == [True] * 4 + [False]


def test_a_split_of_broken_files_stops_with_one_line(tmp_path):
    from omegaconf import OmegaConf

    from vissl_lite.config.schema import DataSplitConfig
    from vissl_lite.data import build_split

    broken_files(tmp_path / "img" / "a")
    cfg = OmegaConf.structured(DataSplitConfig(DATA_SOURCES=["disk_folder"], DATA_PATHS=[str(tmp_path / "img")]))
    split = build_split(cfg, "TRAIN", 3)
    split.use_views([ViewSpec(4, (0.5, 1.0))] * 2, 0.5, 0, 0, "bilinear")
    with pytest.raises(ConfigError, match=r"DATA.TRAIN.DATA_PATHS: .*every image failed to decode: .*empty.png"):
        list(split.train_batches([torch.tensor([0, 1])], 0, "cpu"))


# ----------------------------------------------------------------------------- workers


def test_the_same_crops_with_zero_and_two_workers(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(12):
        save(tmp_path / "img" / f"c{i % 2}" / f"{i}.png", rng.integers(0, 255, (20 + i, 31, 3), dtype=np.uint8))
    files = image_folder(str(tmp_path / "img"))
    specs = [ViewSpec(8, (0.2, 1.0)), ViewSpec(8, (0.2, 1.0)), ViewSpec(4, (0.05, 0.4))]
    requests = [[(epoch, i) for i in batch] for epoch in (0, 1) for batch in ([3, 1, 7, 0], [11, 2, 5, 9])]
    results = []
    for workers in (0, 2):
        loader = FolderLoader(TrainViews(files, 3, specs, 0.5, 0, 0), workers, False)
        results.append([(batch.views, labels) for batch, labels, _, _ in loader.run(requests)])
        results[-1] += [(batch.views, labels) for batch, labels, _, _ in loader.run(requests[:1])]  # workers kept
        loader.close()
    for (views0, labels0), (views2, labels2) in zip(*results):
        assert torch.equal(labels0, labels2) and all(torch.equal(a, b) for a, b in zip(views0, views2))
    assert not torch.equal(results[0][0][0][0], results[0][2][0][0][:4])  # another epoch, other crops


# ----------------------------------------------------------------------------- training from a folder


def small_folder(root, count=16):
    rng = np.random.default_rng(2)
    for i in range(count):
        save(root / f"c{i % 2}" / f"{i:02d}.png", rng.integers(0, 255, (12 + i % 5, 14, 3), dtype=np.uint8))
    (root / "c0" / "zz_broken.png").write_bytes(b"")
    return root


FOLDER_RUN = ["DATA.TRAIN.DATA_SOURCES=[disk_folder]", "DATA.TEST.DATA_SOURCES=[disk_folder]",
              "MODEL.TRUNK.RESNETS.INPUT_CHANNELS=3", "DATA.TRAIN.TRANSFORMS.MEAN=[0.5]", "DATA.TRAIN.TRANSFORMS.STD=[0.25]",
              "DATA.TEST.TRANSFORMS.MEAN=[0.5]", "DATA.TEST.TRANSFORMS.STD=[0.25]", "DATA.TRAIN.TRANSFORMS.CROP_SIZE=8",
              "DATA.TEST.TRANSFORMS.CROP_SIZE=8", "DATA.TRAIN.BATCHSIZE_PER_REPLICA=4", "DATA.TRAIN.NUM_DATALOADER_WORKERS=2",
              "MODEL.TRUNK.RESNETS.WIDTH_MULTIPLIER=0.125", "MODEL.HEAD.PARAMS=[[mlp,{dims:[64,32,16],use_bn:true,use_relu:true}]]",
              "HOOKS.PROGRESS_BAR=false", "HOOKS.LOG_FREQUENCY=1", "HOOKS.KNN_MONITOR.ENABLED=false",
              "HOOKS.ONLINE_LINEAR_PROBE.ENABLED=false", "CHECKPOINT.CHECKPOINT_ITER_FREQUENCY=1", "OPTIMIZER.num_epochs=3"]


def test_stopped_and_rerun_with_two_workers_is_bitwise_identical(tmp_path, sigterm_loss):
    """Stopped mid-epoch and rerun (new workers, resumed at the next unseen batch), a folder run
    with 2 workers ends as one that never stopped."""
    import json

    from vissl_lite.config.load import compose, resolve
    from vissl_lite.engine.train import train

    folder = small_folder(tmp_path / "img")  # 17 files, one unreadable: 4 steps of 4 per epoch, 12 in all
    args = [*FOLDER_RUN, f"DATA.TRAIN.DATA_PATHS=[{folder}]", f"DATA.TEST.DATA_PATHS=[{folder}]",
            "LOSS.name=test_sigterm"]
    for run_dir, stop_at in (("straight", None), ("stopped", 6), ("stopped", None)):
        sigterm_loss["loss"] = SigtermAt(stop_at)
        cfg, inferred = resolve(compose(args))
        result = train(cfg, inferred, str(tmp_path / run_dir))
        assert result["preempted"] == (stop_at is not None) and result["steps"] == (stop_at or 12)
    a, b = (torch.load(tmp_path / d / "checkpoints" / "model_final.torch", weights_only=True) for d in ("straight", "stopped"))
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    records = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert [r["unreadable_images"] for r in records if "unreadable_images" in r] == [1, 1, 1]


def test_augmentations_engine_writes_the_views_and_trains_nothing(tmp_path):
    from vissl_lite.config.load import compose, resolve
    from vissl_lite.engine import run_engine

    folder = small_folder(tmp_path / "img")
    overrides = [*FOLDER_RUN, f"DATA.TRAIN.DATA_PATHS=[{folder}]", f"DATA.TEST.DATA_PATHS=[{folder}]",
                 "engine_name=augmentations", "PREVIEW.NUM_IMAGES=3", "PREVIEW.REPEATS=2",
                 "DATA.TRAIN.TRANSFORMS.COLOR_JITTER_P=0.0", "DATA.TRAIN.TRANSFORMS.GRAYSCALE_P=0.0",
                 "DATA.TRAIN.TRANSFORMS.BLUR_P=0.0"]
    cfg, inferred = resolve(compose(overrides))
    run_engine(cfg, inferred, str(tmp_path / "run"))
    saved = np.load(tmp_path / "run" / "augmentations.npz")
    assert sorted(k for k in saved.files if k.startswith("view_")) == ["view_0", "view_1"]
    assert saved["view_0"].shape == (6, 3, 8, 8) and saved["view_0"].dtype == np.float32
    assert saved["image_index"].tolist() == [0, 0, 1, 1, 2, 2] and saved["repeat"].tolist() == [0, 1] * 3
    # no photometric op: each view is the training crop of that image in epoch `repeat`, / 255
    t = cfg.DATA.TRAIN.TRANSFORMS  # the digits experiment's crop scale and flip probability
    cut = TrainViews(image_folder(str(folder)), 3, [ViewSpec(8, tuple(t.CROP_SCALE))] * 2, t.HFLIP_P, seed=0, rank=0)
    for row in range(6):
        item = cut[(int(saved["repeat"][row]), int(saved["image_index"][row]))]
        for v in range(2):
            expected = item.views[v].float().numpy() / 255
            assert np.allclose(saved[f"view_{v}"][row], expected, atol=1e-6)
    assert Image.open(tmp_path / "run" / "augmentations.png").size[0] > 3 * 64
    assert not (tmp_path / "run" / "checkpoints").exists()
    dino = [*overrides, "config=pretrain/dino/dino_digits", "MODEL.TRUNK.VISION_TRANSFORMERS.INPUT_CHANNELS=3",
            "DATA.TRAIN.TRANSFORMS.LOCAL_CROPS_NUMBER=2", "DATA.TRAIN.TRANSFORMS.LOCAL_CROP_SIZE=4"]
    cfg, inferred = resolve(compose(dino))
    run_engine(cfg, inferred, str(tmp_path / "dino"))
    saved = np.load(tmp_path / "dino" / "augmentations.npz")
    assert [saved[f"view_{v}"].shape[-1] for v in range(4)] == [8, 8, 4, 4]


def test_unlabelled_images_with_the_knn_monitor_stop_with_one_line(tmp_path):
    from vissl_lite.config.load import compose, resolve
    from vissl_lite.engine.train import train

    flat = tmp_path / "flat"
    for i in range(8):
        save(flat / f"{i}.png", solid(10, 10, (i, i, i)))
    args = [*FOLDER_RUN, f"DATA.TRAIN.DATA_PATHS=[{flat}]", f"DATA.TEST.DATA_PATHS=[{flat}]", "HOOKS.KNN_MONITOR.ENABLED=true"]
    cfg, inferred = resolve(compose(args))
    with pytest.raises(ConfigError, match=r"DATA.TRAIN.DATA_PATHS: .*labelled images.*KNN_MONITOR.ENABLED=false"):
        train(cfg, inferred, str(tmp_path / "run"))


def test_write_digits_renders_sizes_and_aspects_in_range():
    from sklearn.datasets import load_digits

    from vissl_lite.data.write_digits import FORMATS, render

    rng = np.random.default_rng(0)
    sizes = np.array([render(d, rng).size for d in load_digits().images[:200]])
    assert sizes.max() <= 72 and sizes.max(1).min() >= 24  # the longer side in 24-72 px
    aspect = sizes[:, 0] / sizes[:, 1]
    assert aspect.min() < 0.8 and aspect.max() > 1.25 and 0.59 <= aspect.min() and aspect.max() <= 1.62
    assert {ext for ext, _, _ in FORMATS} == {"png", "jpg", "bmp", "gif", "webp", "tif"}
    assert {mode for _, mode, _ in FORMATS} == {"RGB", "L", "RGBA", "P"}


def test_main_process_threads_leave_the_workers_their_cores():
    from vissl_lite.data.loader import main_process_threads

    # (current threads, usable cores, workers) -> threads, by hand: min(current, cores - workers), >= 1
    assert main_process_threads(2, 2, 2) == 1
    assert main_process_threads(8, 16, 8) == 8
    assert main_process_threads(4, 16, 0) == 4  # no workers: unchanged
    assert main_process_threads(16, 16, 2) == 14


def test_decode_cache_gives_the_same_views_and_rereads_an_edited_file(tmp_path, monkeypatch):
    from vissl_lite.data import decode as decode_module

    rng = np.random.RandomState(0)
    path = tmp_path / "a.jpg"
    save(path, rng.randint(0, 256, (96, 128, 3), dtype=np.uint8), quality=95)
    small = lambda w, h: ([(0, 0, w, h)], [8])  # drafted: the output is 12x smaller than the image
    whole = lambda w, h: ([(10, 5, 80, 60)], [64])  # not drafted: cached at full resolution

    def views(plan, cache_bytes):
        monkeypatch.setattr(decode_module, "CACHE_BYTES", cache_bytes)
        monkeypatch.setattr(decode_module, "_decoded", {})
        monkeypatch.setattr(decode_module, "_decoded_bytes", [0])
        return [decode_module.decode(str(path), 3, p, "bilinear") for p in plan]

    uncached = views([whole, small, whole], 0)
    cached = views([whole, small, whole], 64 << 20)
    for a, b in zip(uncached, cached):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len(decode_module._decoded) == 1
    # The file is rewritten (new size and mtime): its new pixels are read, not the cached ones.
    save(path, np.zeros((96, 128, 3), dtype=np.uint8), quality=95)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 1_000_000))
    again = decode_module.decode(str(path), 3, whole, "bilinear")
    assert int(again[0].max()) <= 2 and not np.array_equal(again[0], cached[2][0])
