"""How much does the phase randomisation move a run's resolution? RELION's one draw, cryobox's one
draw, and cryobox's default (the expectation over all draws), on one pair of half maps.

Half maps at 1.06 Å/px (her pixel size) of a particle-like density (a random texture with a
B-factor of 200 Å² inside a 150 Å soft ball) plus independent noise per half, so that the corrected
FSC crosses 0.143 near 3.6 Å; one tight soft spherical mask. For seeds 0-9: ``relion_postprocess
--random_seed`` (when installed) and ``cryobox fsc --seed``; then ``cryobox fsc`` without a seed.
Each line gives the interpolated 0.143 crossing of the corrected curve (RELION's curve read from
its STAR file), its range and SD over the seeds, and cryobox's ``measurement_sd_a`` (the crossing's
spread from the FSC's own sampling, which no randomisation removes).

    python benchmarks/fsc_randomisation_spread.py            # box 160 px (about 20 s)
    python benchmarks/fsc_randomisation_spread.py --box 96   # quicker
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

PX = 1.06


def make_maps(cwd: Path, n: int) -> None:
    import scipy.fft as sfft

    from cryobox.core.masks import soft_spherical_mask
    from cryobox.io.mrc import write_mrc

    rng = np.random.default_rng(4)
    f, fr = np.fft.fftfreq(n, PX), np.fft.rfftfreq(n, PX)
    k2 = f[:, None, None] ** 2 + f[None, :, None] ** 2 + fr[None, None, :] ** 2
    texture = rng.normal(size=(n, n, n)).astype(np.float32)
    sig = sfft.irfftn(sfft.rfftn(texture) * np.exp(-200.0 * k2 / 4), s=texture.shape).astype(np.float32)  # B 200 Å²
    sig *= soft_spherical_mask(n, radius_px=75 / PX, soft_edge_px=4)
    sig /= sig.std()
    for k in (1, 2):
        write_mrc(cwd / f"h{k}.mrc", sig + rng.normal(size=sig.shape).astype(np.float32), pixel_size_a=PX)
    # a tight mask (70 Å radius, 3 Å soft edge), where the randomised curve matters most
    write_mrc(cwd / "mask.mrc", soft_spherical_mask(n, radius_px=70 / PX, soft_edge_px=3 / PX), pixel_size_a=PX)


def crossing(k: np.ndarray, f: np.ndarray) -> float:
    from cryobox.core.fsc import first_shell_below

    i = first_shell_below(f, 0.143)
    x = (i - 1) + (f[i - 1] - 0.143) / (f[i - 1] - f[i])
    return float(1.0 / np.interp(x, np.arange(len(k)), k))


def cryobox_fsc(cwd: Path, seed: int | None) -> dict:
    args = [sys.executable, "-m", "cryobox", "fsc", "h1.mrc", "h2.mrc", "--mask", "mask.mrc", "--json"]
    if seed is not None:
        args += ["--seed", str(seed)]
    return json.loads(subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=True).stdout)


def relion(cwd: Path, seed: int) -> float:
    import starfile

    out = cwd / f"post{seed}"
    out.mkdir(exist_ok=True)
    subprocess.run(
        ["relion_postprocess", "--i", "h1.mrc", "--i2", "h2.mrc", "--mask", "mask.mrc", "--angpix", str(PX),
         "--random_seed", str(seed), "--o", f"{out.name}/postprocess"],
        cwd=cwd, capture_output=True, check=True,
    )  # fmt: skip
    fsc = starfile.read(out / "postprocess.star")["fsc"]
    return crossing(fsc["rlnResolution"].to_numpy(), fsc["rlnFourierShellCorrelationCorrected"].to_numpy())


def line(name: str, vals: list[float]) -> str:
    v = np.asarray(vals)
    return f"{name}: {v.min():.3f}-{v.max():.3f} Å over seeds 0-9 (SD {v.std(ddof=1):.3f} Å)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--box", type=int, default=160)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        make_maps(cwd, a.box)
        out = {"box_px": a.box, "pixel_size_a": PX}
        if shutil.which("relion_postprocess"):
            out["relion_one_draw_a"] = [relion(cwd, s) for s in range(10)]
            print(line("relion_postprocess --random_seed 0-9 (one draw each)", out["relion_one_draw_a"]))
        draws = [cryobox_fsc(cwd, s) for s in range(10)]
        out["cryobox_one_draw_a"] = [d["resolution_interpolated_a"] for d in draws]
        print(line("cryobox fsc --seed 0-9 (one draw each)", out["cryobox_one_draw_a"]))
        e1, e2 = cryobox_fsc(cwd, None), cryobox_fsc(cwd, None)
        out["cryobox_expectation_a"] = e1["resolution_interpolated_a"]
        out["measurement_sd_a"] = e1["resolution_measurement_sd_a"]
        same = e1["curves"] == e2["curves"]
        print(
            f"cryobox fsc (the expectation over all draws): {out['cryobox_expectation_a']:.3f} Å, "
            f"{'identical' if same else 'DIFFERENT'} when run again (spread from the randomisation: 0); the "
            f"crossing's own measurement spread: {out['measurement_sd_a']:.3f} Å (SD)"
        )
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
