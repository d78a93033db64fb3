"""Sampling: image i from seed i, independent of batching; the CLI writes N PNGs from a checkpoint."""

import numpy as np
import pytest
import torch
from PIL import Image

from facegan.cli import main
from facegan.errors import FaceganError
from facegan.models.registry import create_generator
from facegan.sample import generate, load_generator, noise_for_seeds, sample_to_folder, to_uint8
from facegan.train import TrainConfig, training_loop


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    np.save(root / "c.npy", np.random.default_rng(0).integers(0, 256, (24, 16, 16, 3), dtype=np.uint8))
    training_loop(TrainConfig(data=str(root / "c.npy"), out=str(root / "run"), kimg=0.024, resolution=16, g={"z_dim": 8, "ngf": 4},
                              d={"ndf": 4}, batch=8, precision="fp32", progress=False, bn_batches=2))
    return root / "run"


def test_noise_is_per_seed():
    a = noise_for_seeds([5, 6, 7], 10)
    assert torch.equal(a[1], noise_for_seeds([6], 10)[0])
    assert not torch.equal(a[0], a[1])


def test_to_uint8_rounds_once():
    x = torch.tensor([-1.0, -0.99, 0.0, 1.0, 1.2]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert to_uint8(x)[0, 0, :, 0].tolist() == [0, 1, 128, 255, 255]  # 127.5 rounds half to even: 128


def test_image_i_does_not_depend_on_the_batch():
    torch.manual_seed(0)
    G = create_generator("dcgan", z_dim=8, ngf=4, resolution=16)
    G.train()  # generate must switch to eval mode itself (and give the mode back)
    many = generate(G, list(range(10)), batch_size=4)
    alone = generate(G, [7], batch_size=1)
    assert G.training
    assert many.shape == (10, 16, 16, 3) and many.dtype == np.uint8
    assert np.array_equal(many[7], alone[0])
    assert not np.array_equal(many[6], many[7])


def test_sample_command_writes_pngs(run, tmp_path, capsys):
    out = tmp_path / "samples"
    assert main(["sample", str(run / "last.pt"), "-n", "12", "-o", str(out), "--batch", "5", "--device", "cpu"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"{i:04d}.png" for i in range(12)]
    img = Image.open(out / "0003.png")
    assert (img.size, img.mode) == ((16, 16), "RGB")
    G = load_generator(run / "last.pt", "ema")
    assert np.array_equal(np.asarray(img), generate(G, [3])[0])  # regenerate image 3 alone
    assert "wrote 12 images" in capsys.readouterr().out
    # a folder that already holds images is refused unless --overwrite
    assert main(["sample", str(run), "-n", "12", "-o", str(out)]) == 2
    assert "already holds 12 images" in capsys.readouterr().err
    assert main(["sample", str(run), "-n", "12", "-o", str(out), "--overwrite", "--which", "g"]) == 0
    # given the run folder, it names the checkpoint it read (best.pt when there is one, else last.pt)
    said = capsys.readouterr().out
    picked = run / "best.pt" if (run / "best.pt").is_file() else run / "last.pt"
    assert f"12 images from the raw weights of {picked} -> {out}" in said and f"from {picked} in" in said


def test_ema_and_raw_generator_differ_and_missing_ema_is_explained(run, tmp_path):
    ema, raw = load_generator(run, "ema"), load_generator(run, "g")
    assert not torch.equal(ema.net[0][0].weight, raw.net[0][0].weight)
    np.save(tmp_path / "c.npy", np.zeros((8, 16, 16, 3), np.uint8))
    training_loop(TrainConfig(data=str(tmp_path / "c.npy"), out=str(tmp_path / "r"), kimg=0.008, resolution=16,
                              g={"z_dim": 8, "ngf": 4}, d={"ndf": 4}, batch=8, ema=False, progress=False))
    with pytest.raises(FaceganError, match="no EMA generator.*--which g"):
        load_generator(tmp_path / "r" / "last.pt", "ema")
    with pytest.raises(FaceganError, match="no such checkpoint"):
        load_generator(tmp_path / "nope.pt")


def test_export_writes_a_small_generator_that_sample_reads(run, tmp_path, capsys):
    from facegan.cli import main

    assert main(["export", str(run), "-o", str(tmp_path / "g.pt")]) == 0
    assert "facegan export" in capsys.readouterr().out
    assert (tmp_path / "g.pt").stat().st_size < (run / "last.pt").stat().st_size / 2
    a = sample_to_folder(run / "last.pt", tmp_path / "a", 6, progress=False)
    b = sample_to_folder(tmp_path / "g.pt", tmp_path / "b", 6, progress=False)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]  # the same EMA faces
    assert main(["sample", str(tmp_path / "g.pt"), "-n", "2", "-o", str(tmp_path / "c"), "--which", "g"]) == 2
    assert "only one generator; use --which ema" in capsys.readouterr().err


def test_long_sampling_says_how_long_after_its_first_batch(capsys, monkeypatch):
    import facegan.models.sampling as sampling

    G = create_generator("dcgan", z_dim=8, ngf=4, resolution=16)
    monkeypatch.setattr(sampling, "SAY_SAMPLING_S", -1.0)  # tiny model: any time counts as long
    generate(G, list(range(10)), batch_size=4, progress=True)
    assert capsys.readouterr().out.count("sampling 10 images: about") == 1
    monkeypatch.setattr(sampling, "SAY_SAMPLING_S", 1e9)
    generate(G, list(range(10)), batch_size=4, progress=True)
    assert "sampling" not in capsys.readouterr().out
