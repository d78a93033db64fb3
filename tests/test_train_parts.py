"""The pieces of training: losses, the in-memory loader, EMA, checkpoints, config, FID hook."""

import json
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facegan.errors import FaceganError
from facegan.data import to_model_range
from facegan.data.loader import BatchLoader
from facegan.train.losses import LOSSES, get_loss
from facegan.train.config import TrainConfig


def _images(n=20, size=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# --- losses ---------------------------------------------------------------------------------
def test_bce_matches_torch_bce_with_logits():
    real, fake = torch.randn(16) * 3, torch.randn(16) * 3
    bce = get_loss("bce")
    want_d = F.binary_cross_entropy_with_logits(real, torch.ones(16)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros(16)
    )
    assert torch.allclose(bce.d(real, fake), want_d, atol=1e-6)
    assert torch.allclose(bce.g(fake), F.binary_cross_entropy_with_logits(fake, torch.ones(16)), atol=1e-6)


def test_losses_reward_the_right_side():
    good_d = (torch.full((8,), 5.0), torch.full((8,), -5.0))
    bad_d = (torch.full((8,), -5.0), torch.full((8,), 5.0))
    for name, loss in LOSSES.items():
        assert loss.d(*good_d) < loss.d(*bad_d), name
        assert loss.g(torch.full((8,), 5.0)) < loss.g(torch.full((8,), -5.0)), name
        assert torch.isfinite(loss.d(torch.full((8,), 1e4), torch.full((8,), -1e4))), name  # no overflow
    with pytest.raises(FaceganError, match="unknown GAN loss.*bce"):
        get_loss("wgan")


# --- loader ---------------------------------------------------------------------------------
def test_model_door_is_x_over_127_5_minus_1():
    x = torch.tensor([[[[0, 127, 255]]]], dtype=torch.uint8)  # (1, 1, 1, 3)
    y = to_model_range(x)
    assert y.shape == (1, 3, 1, 1)
    assert torch.allclose(y.flatten(), torch.tensor([-1.0, 127 / 127.5 - 1, 1.0]))


def _back(batch):
    return ((batch + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_loader_epoch_is_a_permutation_and_deterministic():
    imgs = _images(20)
    a = BatchLoader(imgs, 4, seed=3)
    b = BatchLoader(imgs, 4, seed=3)
    seen = np.concatenate([_back(next(a)) for _ in range(5)])
    assert sorted(map(bytes, seen)) == sorted(map(bytes, imgs))  # every image once per epoch
    for _ in range(5):
        next(b)
    assert torch.equal(next(a), next(b))
    c = BatchLoader(imgs, 4, seed=4)
    assert not np.array_equal(_back(next(c)), seen[:4])


def test_loader_resumes_mid_epoch_and_shards():
    imgs = _images(21)
    a = BatchLoader(imgs, 3, seed=1, flip=True, channels_last=True)
    for _ in range(4):
        next(a)
    state = a.state_dict()
    want = [next(a) for _ in range(6)]  # crosses into the next epoch
    b = BatchLoader(imgs, 3, seed=1, flip=True, channels_last=True)
    b.load_state_dict(json.loads(json.dumps(state)))
    assert all(torch.equal(x, next(b)) for x in want)
    assert want[0].is_contiguous(memory_format=torch.channels_last)
    r0 = BatchLoader(imgs, 2, seed=5, rank=0, world_size=2)
    r1 = BatchLoader(imgs, 2, seed=5, rank=1, world_size=2)
    s0 = np.concatenate([_back(next(r0)) for _ in range(5)])
    s1 = np.concatenate([_back(next(r1)) for _ in range(5)])
    both = sorted(map(bytes, np.concatenate([s0, s1])))
    assert len(set(both)) == 20 and set(both) <= set(map(bytes, imgs))  # disjoint slices of one epoch


def test_loader_flips_mirror_images():
    imgs = _images(16)
    plain = BatchLoader(imgs, 16, seed=2)
    flip = BatchLoader(imgs, 16, seed=2, flip=True)
    p, f = _back(next(plain)), _back(next(flip))
    mirrored = [np.array_equal(a[:, ::-1], b) for a, b in zip(p, f)]
    same = [np.array_equal(a, b) for a, b in zip(p, f)]
    assert all(m or s for m, s in zip(mirrored, same)) and any(mirrored) and any(same)


def test_loader_rejects_too_few_images():
    with pytest.raises(ValueError, match="at least 8 images"):
        BatchLoader(_images(5), 4, world_size=2)


# --- EMA ------------------------------------------------------------------------------------
def test_ema_half_life_in_images():
    from facegan.train.ema import ema_beta

    beta = ema_beta(batch=100, nimg=10**9, half_life_kimg=1.0, rampup=None)
    assert beta**10 == pytest.approx(0.5)  # 10 steps of 100 images = one half-life
    early = ema_beta(batch=100, nimg=2000, half_life_kimg=1.0, rampup=0.1)
    assert early < beta  # ramp-up: a shorter memory early on


def test_ema_update_and_batchnorm_recalibration():
    from facegan.models.registry import create_generator
    from facegan.models.sampling import recalibrate_batchnorm
    from facegan.train.ema import make_ema, update_ema

    torch.manual_seed(0)
    G = create_generator("dcgan", z_dim=8, ngf=4, resolution=8)
    ema = make_ema(G)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
    before = [p.clone() for p in ema.parameters()]
    update_ema(ema, G, beta=0.75)
    for b, e, g in zip(before, ema.parameters(), G.parameters()):
        assert torch.allclose(e, 0.75 * b + 0.25 * g)
    rng = torch.get_rng_state()
    recalibrate_batchnorm(ema, batches=4, batch_size=64)
    assert torch.equal(rng, torch.get_rng_state())  # training's random stream untouched
    assert not ema.training
    # The recalibrated statistics are those of the EMA's own activations: eval ≈ train mode.
    z = torch.randn(512, 8)
    with torch.no_grad():
        eval_out = ema(z)
        ema.train()
        train_out = ema(z)
    assert (eval_out - train_out).abs().mean() < 0.05


# --- checkpoints ----------------------------------------------------------------------------
def test_atomic_save_keeps_the_old_file(tmp_path, monkeypatch):
    from facegan.train import checkpoint

    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"format": checkpoint.FORMAT, "v": 1}, path)

    def broken(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError):
        checkpoint.save_atomic({"format": checkpoint.FORMAT, "v": 2}, path)
    monkeypatch.undo()
    # the old bytes are intact (a toy state: checkpoint.load would refuse it for having no networks)
    assert torch.load(path, weights_only=True)["v"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind


def test_load_rejects_other_files(tmp_path):
    from facegan.train import checkpoint

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FaceganError, match="junk.pt: not a readable checkpoint"):
        checkpoint.load(tmp_path / "junk.pt")
    torch.save({"G": {}}, tmp_path / "other.pt")
    with pytest.raises(FaceganError, match="not a facegan training checkpoint"):
        checkpoint.load(tmp_path / "other.pt")
    with pytest.raises(FaceganError, match="without best.pt or last.pt"):
        checkpoint.load(tmp_path)


# --- config ---------------------------------------------------------------------------------
def test_config_validation_names_the_options():
    with pytest.raises(FaceganError, match="--kimg N"):
        TrainConfig(data="x.npy", out="r")
    with pytest.raises(FaceganError, match="--resolution must be a power of two"):
        TrainConfig(data="x.npy", out="r", kimg=1, resolution=48)
    with pytest.raises(FaceganError, match="--beta1-g"):
        TrainConfig(data="x.npy", out="r", kimg=1, beta1_g=1.5)
    cfg = TrainConfig(data="x.npy", out="r", minutes=3)
    from facegan.config import from_dict, to_dict

    assert from_dict(TrainConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
    pickle.dumps(cfg)


def test_every_config_field_is_a_documented_cli_option():
    import dataclasses

    from facegan.cli import build_parser
    from facegan.config import field_docs

    docs = field_docs(TrainConfig)
    assert all(docs.get(f.name) for f in dataclasses.fields(TrainConfig))
    args = build_parser().parse_args(
        ["train", "--data", "c.npy", "--out", "r", "--kimg", "2", "--no-ema", "--precision", "fp32", "--ref", "none"]
    )
    assert (args.ema, args.precision, args.kimg, args.ref) == (False, "fp32", 2.0, None)


# --- FID hook -------------------------------------------------------------------------------
class MeanColourScorer:
    """A stand-in for facegan.fid.FIDScorer: 'features' are per-image mean colours (3-d)."""

    class Stats:
        def __init__(self, mu, sigma):
            self.mu, self.sigma = mu, sigma

    def __init__(self):
        self.calls = []

    def statistics(self, images):
        assert images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3
        self.calls.append(len(images))
        f = images.reshape(len(images), -1, 3).mean(1).astype(np.float64)
        return self.Stats(f.mean(0), np.cov(f, rowvar=False))


def test_fid_hook_scores_generated_images(tmp_path):
    from facegan.models.registry import create_generator
    from facegan.train.scoring import FidHook

    scorer = MeanColourScorer()
    real = scorer.statistics(_images(200, 8))
    np.savez(tmp_path / "ref.npz", mu=real.mu, sigma=real.sigma)
    hook = FidHook(tmp_path / "ref.npz", torch.device("cpu"), n=50, scorer=scorer)
    torch.manual_seed(0)
    G = create_generator("dcgan", z_dim=8, ngf=4, resolution=8).eval()
    from facegan.models.sampling import GeneratorSampler

    fid = hook(GeneratorSampler(G))
    assert scorer.calls[-1] == 50 and np.isfinite(fid) and fid > 0
    assert hook(GeneratorSampler(G)) == fid  # fixed seeds: the same images every time
    # Honest selection: the seeds that choose best.pt never overlap what `facegan sample` hands in.
    from facegan.models.sampling import generate

    assert min(hook.seeds) >= 1_000_000 and not set(hook.seeds) & set(range(1_000_000))
    assert not np.array_equal(generate(G, hook.seeds[:4]), generate(G, [0, 1, 2, 3]))
    with pytest.raises(FaceganError, match="no such FID statistics"):
        FidHook(tmp_path / "missing.npz", torch.device("cpu"))


def test_monitor_logs_numbers_to_tensorboard_when_installed(tmp_path, monkeypatch):
    """With tensorboard importable, each stats.jsonl record also goes to a SummaryWriter in out/tb."""
    import sys
    import types

    from facegan.train.monitor import Monitor

    written: list[tuple[str, float, int]] = []
    opened: list[str] = []

    class FakeWriter:  # stands in for torch.utils.tensorboard.SummaryWriter (tensorboard not installed)
        def __init__(self, logdir):
            opened.append(logdir)

        def add_scalar(self, tag, value, step):
            written.append((tag, value, step))

        def add_image(self, tag, image, step, dataformats):
            written.append((tag, image.shape, step, dataformats))

        def close(self):
            opened.append("closed")

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    mon = Monitor(tmp_path, total_img=1000, total_seconds=None, bar=False)
    mon.log({"kimg": 0.5, "step": 4, "loss_d": 1.25, "loss_g": 0.75, "fid": 99.0, "ok": True, "note": "x"})
    mon.grid(np.zeros((4, 8, 8, 3), np.uint8), tmp_path / "grid.png", "kimg 0.5  epoch 0.1  EMA", 500)
    mon.close()
    assert opened == [str(tmp_path / "tb"), "closed"]
    assert sorted(written[:3]) == [("fid", 99.0, 500), ("loss_d", 1.25, 500), ("loss_g", 0.75, 500)]
    assert written[3] == ("samples", (22, 22, 3), 500, "HWC")  # the grid goes to TensorBoard too
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size == (22, 22 + 14)  # with its caption strip above
    assert json.loads((tmp_path / "stats.jsonl").read_text())["loss_d"] == 1.25


def test_monitor_without_tensorboard_still_writes_stats(tmp_path, monkeypatch):
    import sys

    from facegan.train.monitor import Monitor

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails: not installed
    mon = Monitor(tmp_path, total_img=1000, total_seconds=None, bar=False)
    mon.log({"kimg": 1.0, "loss_d": 0.5})
    mon.close()
    assert not (tmp_path / "tb").exists()
    assert json.loads((tmp_path / "stats.jsonl").read_text())["loss_d"] == 0.5


def test_curves_draw_the_floor_and_the_brief_target(tmp_path, monkeypatch):
    """curves.png's FID panel: the score beside the real-data floor and the brief's target of 20."""
    import json as _json

    import matplotlib.axes

    from facegan.train.monitor import plot_curves

    drawn = []
    real = matplotlib.axes.Axes.axhline
    monkeypatch.setattr(matplotlib.axes.Axes, "axhline",
                        lambda self, y=0, *a, **k: drawn.append((y, k.get("label"))) or real(self, y, *a, **k))
    rows = [{"kimg": 1.0, "img_per_s": 10.0, "loss_d": 1.0, "loss_g": 1.0},
            {"kimg": 1.0, "fid": 90.0, "fid_n": 1000, "fid_floor": 16.4},
            {"kimg": 2.0, "fid": 70.0, "fid_n": 1000, "fid_floor": 16.4}]
    (tmp_path / "stats.jsonl").write_text("".join(_json.dumps(r) + "\n" for r in rows))
    assert plot_curves(tmp_path / "stats.jsonl", tmp_path / "curves.png").is_file()
    assert (16.4, "real-data floor 16.4") in drawn and (20.0, "the brief's target 20") in drawn
