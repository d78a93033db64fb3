"""What StyleGAN2's per-pixel noise inputs do to a trained generator's FID@1k (issue 21's "why").

For each StyleGAN2 checkpoint given, 1,000 EMA samples on the selection seeds (1,000,000 and up:
never the handed-in 0…999) are scored three ways, side by side:

* **as sampled**: eval mode, each layer's fixed noise map (what ``facegan sample`` hands in);
* **fresh noise**: a new noise map per image and layer, as D saw G's images in training;
* **no noise**: every noise strength set to 0 (the same weights otherwise).

It also prints the RMS of each synthesis layer's output at initialisation and in the checkpoint,
and the learned noise strengths: a strength only means something against the activations it is
added to. Real-data floor beside the scores (16.43 at 1,000 samples).

    python bench/sg2_noise.py /tmp/facegan-per-image-XXXX/0-s0/last.pt [more.pt ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # runnable without installing


def silence_noise(G: torch.nn.Module) -> int:
    """Set every noise strength of a StyleGAN2 generator to 0 in place; how many there were."""
    from facegan.models.stylegan2 import NoiseInput

    noises = [m for m in G.modules() if isinstance(m, NoiseInput)]
    for m in noises:
        m.strength.data.zero_()
    return len(noises)


def layer_rms(G: torch.nn.Module, z: torch.Tensor) -> list[float]:
    """RMS of each synthesis layer's output (eval mode) for the latents ``z``."""
    out: list[float] = []
    hooks = [layer.register_forward_hook(lambda m, i, o: out.append(o.pow(2).mean().sqrt().item())) for layer in G.convs]
    with torch.no_grad():
        G.eval()(z)
    for h in hooks:
        h.remove()
    return out


def samples(G: torch.nn.Module, z: torch.Tensor, fresh_noise: bool) -> torch.Tensor:
    """Images in [-1, 1] for ``z``: eval mode, or training mode's fresh noise with style mixing off."""
    G.train(fresh_noise)
    mixing, G.mixing = G.mixing, 0.0
    torch.manual_seed(123)  # the fresh noise maps are drawn from here
    with torch.no_grad():
        x = torch.cat([G(z[i : i + 250]).clamp(-1, 1) for i in range(0, len(z), 250)])
    G.mixing = mixing
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", type=Path, help="StyleGAN2 checkpoints (last.pt / best.pt) or run folders")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: one per core)")
    args = ap.parse_args()

    from _common import machine_report
    from _scoring import FLOOR_1K, Scorer

    from facegan.models.registry import build
    from facegan.models.sampling import noise_for_seeds, selection_seeds, to_uint8
    from facegan.models.stylegan2 import NoiseInput
    from facegan.runtime import configure_torch
    from facegan.train.checkpoint import load
    from facegan.train.methods.gan import load_generator as generator_of

    configure_torch("cpu", args.threads)
    print(machine_report(), flush=True)
    scorer = Scorer()
    rows = []
    for ckpt in args.checkpoints:
        state = load(ckpt)
        G = generator_of(state, "ema")
        strengths = [m.strength.item() for m in G.modules() if isinstance(m, NoiseInput)]
        if not strengths:
            raise SystemExit(f"{ckpt}: a generator without noise inputs (StyleGAN2 with g.noise=false, or not StyleGAN2)")
        z = noise_for_seeds(selection_seeds(1000), G.z_dim)
        torch.manual_seed(0)
        fresh_g = build("generator", state["config"]["arch"], state["config"]["g"])
        rms_init, rms_now = layer_rms(fresh_g, z[:64]), layer_rms(G, z[:64])
        fids = {"as sampled": scorer.fid(to_uint8(samples(G, z, False))),
                "fresh noise": scorer.fid(to_uint8(samples(G, z, True)))}
        silence_noise(G)
        fids["no noise"] = scorer.fid(to_uint8(samples(G, z, False)))
        rows.append((ckpt, state["nimg"] / 1000, fids, rms_init, rms_now, strengths))
        print(f"{ckpt} ({state['nimg'] / 1000:g} kimg): " + ", ".join(f"{k} {v:.1f}" for k, v in fids.items()), flush=True)

    print(f"\nFID@1k, 1,000 EMA samples on seeds 1,000,000+ (floor {FLOOR_1K}); no noise / as sampled in the last column")
    print("| checkpoint | kimg | as sampled | fresh noise | no noise | ratio |\n|---|---:|---:|---:|---:|---:|")
    for ckpt, kimg, f, *_ in rows:
        print(f"| {ckpt} | {kimg:g} | {f['as sampled']:.1f} | {f['fresh noise']:.1f} | {f['no noise']:.1f} | "
              f"{f['no noise'] / f['as sampled']:.2f} |")
    for ckpt, kimg, _, rms_init, rms_now, strengths in rows:
        sizes = [4] + [4 * 2 ** (1 + i // 2) for i in range(len(rms_now) - 1)]  # 4, then two layers per size
        print(f"\n{ckpt}: each synthesis layer's output RMS at initialisation and now, and its noise strength")
        print("| layer (px) | " + " | ".join(map(str, sizes)) + " |\n|---|" + "---:|" * len(rms_now))
        print("| RMS at init | " + " | ".join(f"{v:.3f}" for v in rms_init) + " |")
        print(f"| RMS at {kimg:g} kimg | " + " | ".join(f"{v:.3f}" for v in rms_now) + " |")
        print("| noise strength | " + " | ".join(f"{v:+.4f}" for v in strengths) + " |")


if __name__ == "__main__":
    main()
