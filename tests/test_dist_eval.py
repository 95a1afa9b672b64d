"""Distributed evaluation: shards that cover every image once, the chunked kNN vote against the
vote written out, and kNN, online-probe evaluation and engine_name=extract_features under torchrun
x2 equal to one process (bitwise features).

Run as a script (`torchrun ... tests/test_dist_eval.py OUT`) this file is also the worker of the
torchrun case."""

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vissl_lite.engine.features import shard_batches  # noqa: E402
from vissl_lite.engine.knn import knn_predict, knn_top1  # noqa: E402


@pytest.mark.parametrize("n, world", [(7, 2), (8, 2), (10, 3), (2, 4), (1, 1)])
def test_shards_are_distributed_samplers_and_interleave_to_dataset_order(n, world):
    from torch.utils.data import DistributedSampler

    shards = [torch.cat(shard_batches(n, 2, rank, world)) for rank in range(world)]
    for rank, shard in enumerate(shards):  # torch's sampler without shuffling, padding included
        assert shard.tolist() == list(DistributedSampler(range(n), world, rank, shuffle=False))
    per_rank = math.ceil(n / world)
    interleaved = [shards[rank][j].item() for j in range(per_rank) for rank in range(world)]
    assert interleaved[:n] == list(range(n))  # every image once, in order, padding after it


def test_weighted_vote_by_hand():
    # normalised query q = (1, 0.1) / |.|: cosines 0.9950, 0.8557, 0.0995, -0.9950 with the four rows
    bank = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]]), dim=1)
    labels = torch.tensor([0, 1, 1, 0])
    query = torch.tensor([[1.0, 0.1]])
    # k=1: the nearest row's class; k=3: e^0.8557 + e^0.0995 = 3.458 for class 1 > e^0.9950 = 2.705
    assert knn_predict(bank, labels, query, k=1, temperature=1.0, num_classes=2).tolist() == [0]
    assert knn_predict(bank, labels, query, k=3, temperature=1.0, num_classes=2).tolist() == [1]
    # T = 0.1 sharpens the weights: e^9.950 = 20952 against e^8.557 + e^0.995 = 5203
    assert knn_predict(bank, labels, query, k=3, temperature=0.1, num_classes=2).tolist() == [0]


def test_chunked_top_k_equals_the_vote_over_the_whole_bank():
    gen = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(203, 16, generator=gen), torch.randn(41, 16, generator=gen)
    labels, query_labels = torch.randint(5, (203,), generator=gen), torch.randint(5, (41,), generator=gen)
    k, temperature = 7, 0.2
    # the formula written out, in float64 over the whole bank
    unit = torch.nn.functional.normalize
    cos = unit(queries.double(), dim=1) @ unit(bank.double(), dim=1).t()
    expected = []
    for row in cos:
        top = row.argsort(descending=True)[:k]
        scores = [sum(math.exp(row[i].item() / temperature) for i in top if labels[i] == c) for c in range(5)]
        expected.append(max(range(5), key=scores.__getitem__))
    normalised = torch.nn.functional.normalize(bank, dim=1)
    for query_chunk, bank_chunk in ((1024, 262144), (5, 23), (41, 7)):  # 7 = k: one candidate set per chunk
        got = knn_predict(normalised, labels, queries, k, temperature, 5, query_chunk, bank_chunk)
        assert got.tolist() == expected
    top1 = sum(e == y for e, y in zip(expected, query_labels.tolist())) / 41
    assert knn_top1(normalised, labels, queries, query_labels, k, temperature, bank_chunk=23) == top1


def test_float16_bank_votes_like_float32_on_separated_classes():
    gen = torch.Generator().manual_seed(1)
    centers = torch.nn.functional.normalize(torch.randn(4, 32, generator=gen), dim=1)
    labels = torch.randint(4, (300,), generator=gen)
    bank = torch.nn.functional.normalize(centers[labels] + 0.3 * torch.randn(300, 32, generator=gen), dim=1)
    queries = centers[labels[:50]] + 0.3 * torch.randn(50, 32, generator=gen)
    full = knn_predict(bank, labels, queries, 10, 0.07, 4)
    half = knn_predict(bank.half(), labels, queries, 10, 0.07, 4, bank_chunk=64)
    assert (full == half).float().mean() >= 0.98


# ----------------------------------------------------------------------------- torchrun x2

OVERRIDES = ["MODEL.TRUNK.RESNETS.WIDTH_MULTIPLIER=0.125", "MODEL.HEAD.PARAMS=[[mlp,{dims:[64,32]}]]",
             "DATA.TRAIN.DATA_LIMIT=301", "DATA.TEST.DATA_LIMIT=97", "DATA.TEST.BATCHSIZE_PER_REPLICA=16",
             "HOOKS.KNN_MONITOR.K=5", "HOOKS.PROGRESS_BAR=false"]


def evaluate_on_every_rank(out_path: str) -> None:
    """The worker: a seeded BatchNorm ResNet whose running statistics differ per rank (rank 0's
    must be used), kNN top-1 and online-probe top-1 on digits splits of odd sizes."""
    from vissl_lite import distributed
    from vissl_lite.config.load import compose, resolve
    from vissl_lite.data import build_split
    from vissl_lite.engine.evaluation import evaluate_knn, split_features, top1_over_ranks
    from vissl_lite.engine.online_probe import OnlineLinearProbe
    from vissl_lite.models import build_model

    cfg, _ = resolve(compose(["config=pretrain/simclr/simclr_digits", *OVERRIDES]))
    env = distributed.init_distributed(cfg.DISTRIBUTED, "cpu")
    torch.manual_seed(0)
    model = build_model(cfg.MODEL)
    probe = OnlineLinearProbe(model.trunk.out_dim, 10)
    stats = torch.Generator().manual_seed(1 + env.rank)
    for module in model.trunk.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5, generator=stats)
            module.running_var.uniform_(0.5, 2.0, generator=stats)
    train, test = build_split(cfg.DATA.TRAIN, "TRAIN", 1), build_split(cfg.DATA.TEST, "TEST", 1)
    device = torch.device("cpu")
    queries = split_features(model, test, cfg, device, env)
    result = {"features": queries[0], "labels": queries[1],
              "knn_top1": evaluate_knn(model, train, test, cfg, device, env, queries),
              "probe_top1": top1_over_ranks(probe.predict, *queries, env), "training": model.training}
    if env.is_main:
        torch.save(result, out_path)


def extract_on_every_rank(run_dir: str) -> None:
    """The worker, second part: engine_name=extract_features (test_extract_features' case) in
    the same processes; the engine ends the process group."""
    from test_extract_features import EXTRACT, VIT

    from vissl_lite.config.load import compose, resolve
    from vissl_lite.engine.extract_features import extract_features

    cfg, inferred = resolve(compose([*VIT, *EXTRACT, "HOOKS.PROGRESS_BAR=false"]))
    extract_features(cfg, inferred, run_dir)


def test_knn_probe_and_extract_features_under_torchrun_equal_one_process(tmp_path, monkeypatch, cli_in_process):
    from conftest import clean_env
    from test_extract_features import EXTRACT, VIT, dino_checkpoint

    dino_checkpoint(tmp_path / "one" / "checkpoints")
    shutil.copytree(tmp_path / "one" / "checkpoints", tmp_path / "two" / "checkpoints")
    two = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                            __file__, str(tmp_path)], env=clean_env(OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    evaluate_on_every_rank(str(tmp_path / "one.pt"))
    status, output = cli_in_process(f"hydra.run.dir={tmp_path / 'one'}", *VIT, *EXTRACT)
    assert status == 0, output[-3000:]
    output, _ = two.communicate(timeout=300)
    assert two.returncode == 0, output[-3000:]

    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert one["features"].shape == (97, 64) and one["labels"].shape == (97,)
    assert torch.equal(one["features"], two["features"]) and torch.equal(one["labels"], two["labels"])
    assert one["knn_top1"] == two["knn_top1"] and one["probe_top1"] == two["probe_top1"]
    assert 0.3 < one["knn_top1"] <= 1.0 and one["training"] and two["training"]  # train mode restored
    # extract_features: the same bytes (every image once, dataset order), PART=teacher with patch tokens
    written = sorted(p.name for p in (tmp_path / "one" / "features").iterdir())
    assert written == sorted(f"{split}_{kind}.npy" for split in ("TRAIN", "TEST")
                             for kind in ("features", "labels", "patch_tokens"))
    for name in written:
        assert (tmp_path / "one" / "features" / name).read_bytes() == \
            (tmp_path / "two" / "features" / name).read_bytes(), name


if __name__ == "__main__":
    evaluate_on_every_rank(str(Path(sys.argv[1]) / "two.pt"))
    extract_on_every_rank(str(Path(sys.argv[1]) / "two"))
