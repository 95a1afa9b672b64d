"""engine_name=extract_features: the rows are the chosen trunk's features of the evaluation view in
dataset order; folder sources get their paths; an existing features folder is kept unless
EXTRACT_FEATURES.OVERWRITE. (torchrun x2 writing one process's bytes: tests/test_dist_eval.py.)"""

import numpy as np
import torch

from vissl_lite.config.load import compose, resolve
from vissl_lite.data.sources import load_digits
from vissl_lite.engine import checkpoint as ckpt
from vissl_lite.models import build_model

VIT = [
    "config=pretrain/dino/dino_digits", "MODEL.TRUNK.VISION_TRANSFORMERS.HIDDEN_DIM=32",
    "MODEL.TRUNK.VISION_TRANSFORMERS.NUM_LAYERS=2", "MODEL.TRUNK.VISION_TRANSFORMERS.NUM_HEADS=2",
    "MODEL.TRUNK.VISION_TRANSFORMERS.MLP_DIM=64",
    "MODEL.HEAD.PARAMS=[[dino_head,{in_dim:32,num_clusters:[16],hidden_dim:32,bottleneck_dim:8}]]",
]
EXTRACT = ["engine_name=extract_features", "DATA.TRAIN.DATA_LIMIT=101", "DATA.TEST.DATA_LIMIT=37",
           "DATA.TEST.BATCHSIZE_PER_REPLICA=16", "EXTRACT_FEATURES.PART=teacher", "EXTRACT_FEATURES.PATCH_TOKENS=true"]


def dino_checkpoint(folder):
    """A DINO-shaped final checkpoint whose teacher differs from its student; returns the teacher."""
    cfg, _ = resolve(compose(VIT))
    torch.manual_seed(0)
    student, teacher = build_model(cfg.MODEL), build_model(cfg.MODEL)
    ckpt.save_checkpoint(folder, {"model": student.state_dict(), "step": 7, "epoch": 1,
                                  "method": {"teacher": teacher.state_dict(), "center": torch.zeros(1, 16)}},
                         ckpt.FINAL, max_keep=0)
    return teacher.trunk.eval()


def read(folder, split):
    return {kind: np.load(folder / f"{split}_{kind}.npy") for kind in ("features", "labels", "patch_tokens")}


def test_teacher_features_in_dataset_order_and_an_existing_folder_kept(tmp_path, cli_in_process):
    teacher = dino_checkpoint(tmp_path / "run" / "checkpoints")
    status, output = cli_in_process(f"hydra.run.dir={tmp_path / 'run'}", *VIT, *EXTRACT)
    assert status == 0, output[-3000:]
    for split, n in (("TRAIN", 101), ("TEST", 37)):
        files = read(tmp_path / "run" / "features", split)
        assert files["features"].dtype == np.float32 and files["features"].shape == (n, 32)
        assert files["patch_tokens"].dtype == np.float16 and files["patch_tokens"].shape == (n, 4, 32)  # 2x2 patches
        # dataset order, the teacher's trunk, dino_digits' evaluation view: (x - 0.3) / 0.4 at 8x8
        images, labels = load_digits(split)
        assert files["labels"].tolist() == labels[:n].tolist()
        with torch.no_grad():
            expected = teacher((images[:n] - 0.3) / 0.4)
        torch.testing.assert_close(torch.from_numpy(files["features"]), expected, rtol=1e-5, atol=1e-5)
    # the existing folder is kept: one line naming the key, nothing rewritten
    before = (tmp_path / "run" / "features" / "TEST_features.npy").stat().st_mtime_ns
    status, output = cli_in_process(f"hydra.run.dir={tmp_path / 'run'}", *VIT, *EXTRACT)
    assert status == 2 and "EXTRACT_FEATURES.OVERWRITE: got False; allowed: true to replace the existing" in output
    assert (tmp_path / "run" / "features" / "TEST_features.npy").stat().st_mtime_ns == before
    status, output = cli_in_process(f"hydra.run.dir={tmp_path / 'run'}", *VIT, *EXTRACT[:-2],
                                    "EXTRACT_FEATURES.SPLITS=[TEST]", "EXTRACT_FEATURES.OVERWRITE=true")
    assert status == 0 and sorted(p.name for p in (tmp_path / "run" / "features").iterdir()) == [
        "TEST_features.npy", "TEST_labels.npy"]  # replaced as a whole: the student's trunk, no patch tokens


def test_image_folder_rows_follow_the_paths_written(tmp_path, cli_in_process):
    from PIL import Image

    root = tmp_path / "images"
    rng = np.random.RandomState(0)
    for name in ("a/0.png", "a/1.png", "b/2.png", "b/3.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.randint(0, 256, (8, 8), dtype=np.uint8), mode="L").save(root / name)
    (root / "b" / "4.png").write_bytes(b"not an image")  # stands in as a black image, row kept
    run = tmp_path / "run"
    teacher = dino_checkpoint(run / "checkpoints")
    status, output = cli_in_process(
        f"hydra.run.dir={run}", *VIT, "engine_name=extract_features", "EXTRACT_FEATURES.SPLITS=[TRAIN]",
        "EXTRACT_FEATURES.PART=teacher", "DATA.TRAIN.DATA_SOURCES=[disk_folder]", f"DATA.TRAIN.DATA_PATHS=[{root}]",
        "DATA.TEST.TRANSFORMS.RESIZE_SIZE=8")
    assert status == 0, output[-3000:]
    features = run / "features"
    paths = (features / "TRAIN_paths.txt").read_text().splitlines()
    assert [p[len(str(root)) + 1:] for p in paths] == ["a/0.png", "a/1.png", "b/2.png", "b/3.png", "b/4.png"]
    assert np.load(features / "TRAIN_labels.npy").tolist() == [0, 0, 1, 1, 1]
    images = torch.stack([torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32) / 255).unsqueeze(0)
                          for p in paths[:4]] + [torch.zeros(1, 8, 8)])
    with torch.no_grad():
        expected = teacher((images - 0.3) / 0.4)
    torch.testing.assert_close(torch.from_numpy(np.load(features / "TRAIN_features.npy")), expected,
                               rtol=1e-5, atol=1e-5)
    assert "1 unreadable images entered the features as black images" in output


def test_patch_tokens_follow_the_class_and_register_tokens():
    from vissl_lite.engine.features import trunk_forward
    from vissl_lite.models.vit import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer.from_preset("digits", input_channels=1, num_register_tokens=2).eval()
    x = torch.rand(3, 1, 8, 8)
    features, patches = trunk_forward(vit, patch_tokens=True)(x)
    with torch.no_grad():  # the sequence written out: [cls, 2 registers, 4 patches] after the final norm
        tokens = torch.cat([vit.cls_token.expand(3, -1, -1), vit.patch_embed(x)], 1) + vit.pos_embed
        tokens = torch.cat([tokens[:, :1], vit.reg_token.expand(3, -1, -1), tokens[:, 1:]], 1)
        for block in vit.blocks:
            tokens = block(tokens)
        tokens = vit.norm(tokens)
    assert patches.dtype == torch.float16 and patches.shape == (3, 4, 96)
    torch.testing.assert_close(patches, tokens[:, 3:].half())
    torch.testing.assert_close(features, tokens[:, 0])
