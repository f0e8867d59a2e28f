"""`cryobox diagnose` on known answers: isotropic maps, a degraded double cone, SCF of distributions
with published values, a known power profile, the conical average against the global FSC; even
and odd boxes; the command, its figures and its report section."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.fft as sfft

from cryobox.core.diagnose import (
    conical_fsc,
    direction_bins,
    fsc_dips,
    hemisphere_directions,
    radial_power,
    sampling_compensation_factor,
    viewing_directions,
)
from cryobox.core.fourier import rfft_shell_index
from cryobox.core.fsc import fsc_curve
from cryobox.io.mrc import write_mrc

CLI = [sys.executable, "-m", "cryobox"]


def _spectra(n, rng, *, snr=2.0, degrade=None, dtype=np.float32):
    """Half maps' spectra: a shared signal plus independent noise; ``degrade=(half_angle_deg,
    shell)`` removes the signal beyond ``shell`` in the double cone of that half-angle around z."""
    sig = sfft.rfftn(rng.standard_normal((n, n, n)).astype(dtype))
    if degrade is not None:
        ang, s0 = degrade
        kz = np.fft.fftfreq(n)[:, None, None] * n
        ky = np.fft.fftfreq(n)[None, :, None] * n
        kx = np.fft.rfftfreq(n)[None, None, :] * n
        r = np.sqrt(kx**2 + ky**2 + kz**2)
        with np.errstate(invalid="ignore", divide="ignore"):
            inside = np.abs(kz) / np.where(r == 0, 1, r) >= np.cos(np.deg2rad(ang))
        sig = np.where(inside & (r >= s0), 0, sig)
    noise = 1.0 / np.sqrt(snr)
    f1 = sig + noise * sfft.rfftn(rng.standard_normal((n, n, n)).astype(dtype))
    f2 = sig + noise * sfft.rfftn(rng.standard_normal((n, n, n)).astype(dtype))
    return f1, f2


def _axis_angle_to_z(d):
    return np.degrees(np.arccos(np.clip(np.abs(d[:, 2]), 0, 1)))


@pytest.mark.parametrize("n", [48, 49])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_isotropic_half_maps_give_cfar_near_1_and_a_narrow_spread(n, dtype):
    from cryobox.core.diagnose import cfar

    rng = np.random.default_rng(n)
    f1, f2 = _spectra(n, rng, snr=2.0, dtype=dtype)
    shells = rfft_shell_index((n, n, n))
    ns = n // 2 + 1
    bins, centres = direction_bins((n, n, n))
    cones, counts = conical_fsc(f1, f2, shells, ns, bins, centres, hemisphere_directions(500))
    assert cones.shape == (500, ns) and counts[:, ns // 2].min() > 30
    freq = np.arange(ns) / (n * 2.0)
    c = cfar(cones, freq)
    assert c["cfar"] > 0.85 and c["min_over_mean"] > 0.9  # smallest / largest area, smallest / mean
    # every cone's FSC near the expected SNR / (1 + SNR) = 2/3, with a narrow spread
    # (NaN: cones with too few voxels at a low shell)
    assert abs(np.nanmedian(cones[:, 3:]) - 2 / 3) < 0.03
    assert np.nanpercentile(cones[:, 3:], 95) - np.nanpercentile(cones[:, 3:], 5) < 0.25


def test_a_degraded_double_cone_gives_back_the_resolution_put_in():
    n, px, s0 = 64, 2.0, 12  # signal removed beyond shell 12 (10.7 Å) within 45° of z
    rng = np.random.default_rng(1)
    f1, f2 = _spectra(n, rng, snr=4.0, degrade=(45.0, s0))
    shells = rfft_shell_index((n, n, n))
    ns = n // 2 + 1
    bins, centres = direction_bins((n, n, n))
    dirs = hemisphere_directions(500)
    glob = fsc_curve(sfft.irfftn(f1, s=(n, n, n)), sfft.irfftn(f2, s=(n, n, n)))
    cones, _ = conical_fsc(f1, f2, shells, ns, bins, centres, dirs, half_angle_deg=20.0, fill=glob)
    from cryobox.core.fsc import resolution_interpolated

    res = np.array([resolution_interpolated(c, 0.143, box_px=n, pixel_size_a=px) for c in cones])
    angle = _axis_angle_to_z(dirs)
    inside = angle <= 25 - 1  # the whole cone (20°) within the degraded 45°, less a bin
    outside = angle >= 65 + 1
    shell_of = n * px / res
    # the signal ends at radius s0: between shell s0 (half of it has signal) and s0 + 1 (none)
    assert np.all(np.abs(shell_of[inside] - (s0 + 0.5)) <= 1.0), shell_of[inside]  # within one shell
    assert np.all(res[outside] < n * px / (ns - 3))  # elsewhere: out to (nearly) Nyquist
    from cryobox.core.diagnose import cfar

    iso, _ = conical_fsc(*_spectra(n, rng, snr=4.0), shells, ns, bins, centres, dirs)
    freq = np.arange(ns) / (n * px)
    assert cfar(cones, freq)["cfar"] < cfar(iso, freq)["cfar"] - 0.2  # the cFAR falls with the cone


@pytest.mark.parametrize("n", [40, 41])
def test_conical_fscs_averaged_over_every_direction_give_the_global_fsc(n):
    rng = np.random.default_rng(3)
    f1, f2 = _spectra(n, rng, snr=1.0)
    shells = rfft_shell_index((n, n, n))
    ns = n // 2 + 1
    bins, centres = direction_bins((n, n, n))
    cones, _ = conical_fsc(f1, f2, shells, ns, bins, centres, hemisphere_directions(500), min_voxels=1)
    h1 = sfft.irfftn(f1, s=(n, n, n))
    h2 = sfft.irfftn(f2, s=(n, n, n))
    glob = fsc_curve(h1, h2)
    # from shell 5 on, where a cone holds dozens of voxels (below, a mean of ratios of a few voxels is biased)
    np.testing.assert_allclose(cones.mean(axis=0)[5:], glob[5:], atol=0.05)


def test_scf_of_distributions_with_published_values():
    """Baldwin & Lyumkis 2020's analytic cases: uniform 1, side views only 8/π² (nothing unsampled,
    so SCF* = SCF), top views only SCF* → 0 (all but one band of directions unsampled)."""
    rng = np.random.default_rng(4)
    u = sampling_compensation_factor(rng.normal(size=(50_000, 3)))
    assert u["scf"] == pytest.approx(1.0, abs=0.02) and u["scf_star"] == pytest.approx(1.0, abs=0.02)
    assert u["fourier_radius"] == 50 and u["n_views_used"] == 10_000 and u["unsampled_fraction"] == 0
    phi = rng.uniform(0, 2 * np.pi, 50_000)
    side = sampling_compensation_factor(np.stack([np.cos(phi), np.sin(phi), np.zeros_like(phi)], axis=1))
    assert side["scf"] == pytest.approx(8 / np.pi**2, abs=0.02) and side["scf_star"] == side["scf"]
    top = sampling_compensation_factor(np.tile([0.0, 0.0, 1.0], (5000, 1)))
    assert top["scf_star"] < 0.01 and top["unsampled_fraction"] > 0.9
    # a few particles: R lowered so that uniform views still fill each band, SCF still near 1
    few = sampling_compensation_factor(rng.normal(size=(300, 3)))
    assert few["fourier_radius"] == 3 and few["scf_star"] == pytest.approx(1.0, abs=0.05)
    # views only within 60° of ±z: a Fourier direction k within 30° of z has its great circle outside
    # that cone, so a fraction 1 - cos 30° = 0.134 is never sampled, and SCF* falls below SCF
    v = rng.normal(size=(60_000, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    cone = sampling_compensation_factor(v[np.abs(v[:, 2]) > 0.5])
    assert cone["unsampled_fraction"] == pytest.approx(1 - np.cos(np.pi / 6), abs=0.01)
    assert cone["scf_star"] < 0.2 and cone["scf"] > 0.6  # the gap, not the sampled part, is the damage
    with pytest.raises(ValueError, match="at least 100 views"):
        sampling_compensation_factor(rng.normal(size=(50, 3)))
    # RELION's angles: tilt 90° is a side view whatever rot is
    v = viewing_directions([0, 90, 180], [90, 90, 0])
    np.testing.assert_allclose(v, [[1, 0, 0], [0, 1, 0], [0, 0, 1]], atol=1e-12)


@pytest.mark.parametrize("n", [64, 65])
def test_the_power_spectrum_of_a_known_profile_gives_it_back(n):
    rng = np.random.default_rng(5)
    shells = rfft_shell_index((n, n, n))
    ns = n // 2 + 1
    k = np.arange(ns, dtype=float)
    profile = 1e3 * np.exp(-((k / 9.0) ** 2)) + 1.0
    w = sfft.rfftn(rng.standard_normal((n, n, n)))
    amp = np.sqrt(profile)[np.minimum(shells, ns - 1)]
    p = radial_power(w * amp, shells, ns)
    ratio = p[2:] / (profile[2:] * n**3)
    voxels = np.bincount(shells.reshape(-1), minlength=ns)[2:ns]
    assert np.all(np.abs(ratio - 1) < 4 / np.sqrt(voxels)), ratio  # within 4 SD of a shell's mean |F|²
    assert abs(np.median(ratio) - 1) < 0.02


def test_fsc_dips_find_a_hill():
    c = np.array([1, 0.99, 0.95, 0.8, 0.5, 0.3, 0.35, 0.45, 0.3, 0.1, 0.05, 0.06, 0.04])
    d = fsc_dips(c)
    assert d[0]["dip_shell"] == 5 and d[0]["peak_shell"] == 7
    assert all(x["dip_shell"] != 10 for x in d)  # a rise of 0.01 is not a hill


# ------------------------------------------------------------------------ the command


@pytest.fixture(scope="module")
def halves(tmp_path_factory):
    """Half maps of a blob with texture, preferred-orientation-like damage along z, and particles
    seen mostly from the top."""
    import scipy.ndimage as ndi

    from cryobox.io.particles import write_star
    from cryobox.io.table import ParticleTable

    root = tmp_path_factory.mktemp("diag")
    rng = np.random.default_rng(6)
    n = 64
    x = np.indices((n, n, n)) - n // 2
    r = np.sqrt((x**2).sum(0))
    tex = ndi.gaussian_filter(rng.standard_normal((n, n, n)), 1.0) * (r < 22)
    s = (np.exp(-((r / 12) ** 2)) + 3 * tex).astype(np.float32)
    f = sfft.rfftn(s)
    kz = np.fft.fftfreq(n)[:, None, None] * n
    kr = np.sqrt(np.fft.fftfreq(n)[None, :, None] ** 2 * n * n + np.fft.rfftfreq(n)[None, None, :] ** 2 * n * n + kz**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        along_z = np.abs(kz) / np.where(kr == 0, 1, kr) > np.cos(np.deg2rad(50))
    f = np.where(along_z & (kr > 10), 0, f)
    s = sfft.irfftn(f, s=(n, n, n)).astype(np.float32)
    for h in (1, 2):
        noise = 0.5 * s.std() * rng.standard_normal(s.shape).astype(np.float32)
        write_mrc(root / f"h{h}.mrc", s + noise, pixel_size_a=2.0)
    import pandas as pd

    m = 2000
    data = pd.DataFrame(
        {
            "angle_rot_deg": rng.uniform(-180, 180, m),
            "angle_tilt_deg": np.abs(rng.normal(0, 10, m)),  # top views
            "angle_psi_deg": rng.uniform(-180, 180, m),
            "defocus_u_a": np.full(m, 20000.0),
            "defocus_v_a": np.full(m, 20000.0),
            "defocus_angle_deg": np.zeros(m),
            "voltage_kv": np.full(m, 300.0),
            "cs_mm": np.full(m, 2.7),
            "amplitude_contrast": np.full(m, 0.1),
            "pixel_size_a": np.full(m, 2.0),
            "box_px": np.full(m, 64),
            "optics_group": np.ones(m, dtype=int),
        }
    )
    write_star(root / "data.star", ParticleTable(data, kind="particles", source_format="relion3.1"))
    return root


def test_diagnose_end_to_end_names_the_anisotropy_and_the_top_views(halves, tmp_path):
    r = subprocess.run(
        [*CLI, "diagnose", "h1.mrc", "h2.mrc", "--particles", "data.star", "--out", str(tmp_path / "D"), "--json"]
        + ["--no-mask"],  # a tight mask's transform spreads signal into the damaged cone (tested below with one)
        cwd=halves,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    dd = d["directional"]
    assert dd["n_directions"] == 500 and len(dd["resolution_a"]) == 500
    assert dd["anisotropic"] and dd["cfar"] < 0.5
    worst = np.asarray(dd["worst_direction"])
    assert abs(worst[2]) > np.cos(np.deg2rad(15))  # the worst axis is the damaged one, along z (within 15°)
    assert "anisotropic" in " ".join(d["summary"]) and "from z" in " ".join(d["summary"])
    assert dd["worst_a"] > 10.0 > 5.0 > dd["best_a"]  # signal was removed beyond 12.8 Å along z only
    assert d["views"]["scf_star"] < 0.81 and d["views"]["anisotropic"]
    text = " ".join(d["summary"])
    assert "anisotropic" in text and "SCF" in text and "CTF without aliasing" in text
    for name in ("diagnose.json", "directional.png", "power.png", "views.png"):
        assert (tmp_path / "D" / name).stat().st_size > 0
    assert json.loads((tmp_path / "D" / "diagnose.json").read_text())["cryobox"] == "diagnose"
    # with the auto mask (the default, as cryobox fsc): written, and the worst axis is still z
    m = subprocess.run(
        [*CLI, "diagnose", "h1.mrc", "h2.mrc", "--out", str(tmp_path / "D"), "--json"],
        cwd=halves,
        capture_output=True,
        text=True,
    )
    assert m.returncode == 0, m.stderr
    dm = json.loads(m.stdout)
    assert (tmp_path / "D" / "mask.mrc").exists() and dm["mask"].endswith("mask.mrc")
    assert abs(dm["directional"]["worst_direction"][2]) > np.cos(np.deg2rad(50))
    assert not (tmp_path / "D" / "views.png").exists()  # the other run's figure went with its settings
    # the report shows it
    rep = subprocess.run(
        [*CLI, "report", "data.star", "--diameter", "60", "--resolution", "8", "--diagnose", str(tmp_path / "D")]
        + ["--out", str(tmp_path / "r.html")],
        cwd=halves,
        capture_output=True,
        text=True,
    )
    assert rep.returncode == 0, rep.stderr
    html = (tmp_path / "r.html").read_text()
    assert "cryobox diagnose" in html and "cFAR" in html and "diagnose-power" in html


def test_diagnose_bad_input_is_one_sentence(halves, tmp_path):
    from cryobox.io.particles import read_particles, write_star

    t = read_particles(halves / "data.star")
    t.data = t.data.drop(columns=["angle_rot_deg", "angle_tilt_deg", "angle_psi_deg"])
    write_star(tmp_path / "nopose.star", t)
    for args, words in (
        (["--directions", 5], "--directions"),
        (["--cone-angle", 80], "--cone-angle"),
        (["--particles", str(tmp_path / "nopose.star")], "no poses"),
    ):
        r = subprocess.run(
            [*CLI, "diagnose", "h1.mrc", "h2.mrc", "--out", str(tmp_path / "D"), *map(str, args)],
            cwd=halves,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 2 and "Traceback" not in r.stderr and words in r.stderr, r.stderr


def test_the_words_follow_the_numbers_and_name_a_cause_only_with_evidence():
    from cryobox.jobs.diagnose import _sentences

    power = {"fsc_dips": [], "ice_rings": []}
    # cFAR just above cryoSPARC's 0.5 but a worst direction 40% coarser than the best: anisotropic
    d = {"best_a": 3.5, "worst_a": 4.9, "cfar": 0.52, "anisotropic": True, "mildly_anisotropic": True,
         "worst_direction": [0.0, 0.1, 0.995]}  # fmt: skip
    text = _sentences(d, power, None, {}, 3.6, False)[0]
    assert "anisotropic" in text and "no sign" not in text and "6° from z" in text
    assert "preferred orientation" not in text and "particle file" in text  # no cause without evidence
    views = {"scf_star": 0.6, "anisotropic": True, "unsampled_fraction": 0.1}
    assert "preferred orientation" in _sentences(d, power, views, {}, 3.6, False)[0]
    flat = {**d, "worst_a": 3.6, "cfar": 0.9, "anisotropic": False, "mildly_anisotropic": False}
    assert "no sign of anisotropy" in _sentences(flat, power, None, {}, 3.6, False)[0]


@pytest.mark.parametrize("crossing,expect", [(4, False), (15, True)])
def test_a_direction_is_reported_only_with_enough_voxels_at_its_crossing(crossing, expect):
    """A cone's FSC over fewer than MIN_CONE_VOXELS voxels is not read: half maps that decorrelate
    at shell 4 (cones of 20° hold a handful of voxels there) report no direction of their own;
    at shell 15 every direction is reported. The voxel counts behind the rule are the cones' own."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from cryobox.core.diagnose import MIN_CONE_VOXELS, conical_resolution
    from mapgen import known_crossing_half_maps

    n = 40
    h1, h2 = known_crossing_half_maps(n, crossing, seed=2)
    f1, f2 = sfft.rfftn(h1), sfft.rfftn(h2)
    dr = conical_resolution(f1, f2, rfft_shell_index(h1.shape), n, 2.0, n_directions=30)
    at = np.array([np.flatnonzero(c[1:] < 0.143)[0] + 1 for c in dr["curves"]])
    counts = dr["voxels"][np.arange(30), at]
    assert np.array_equal(dr["reported"], counts >= MIN_CONE_VOXELS)
    assert bool(dr["reported"].all()) is expect and bool(dr["reported"].any()) is expect
