import json

import mrcfile
import numpy as np
import pytest
import starfile

from conftest import needs_relion, run_relion
from cryobox.core.fourier import filter_map, fourier_rescale, rfft_shell_index, window
from cryobox.core.fsc import (
    fsc_curve,
    mask_effective_fraction,
    masked_fsc_analysis,
    resolution_interpolated,
    resolution_relion_rule,
)
from cryobox.core.masks import auto_mask, soft_spherical_mask
from cryobox.core.phase_random import corrected_fsc, randomise_phases_beyond
from mapgen import known_crossing_half_maps, particle_half_maps


def write(path, data, px):
    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.asarray(data, dtype=np.float32))
        m.voxel_size = px
    return path


def relion_star_text(stdout):
    return stdout[stdout.index("# version") :]


@pytest.mark.parametrize("n,shell", [(48, 12), (49, 12), (64, 20), (65, 9)])
def test_known_answer_crossing(n, shell, float_dtype):
    h1, h2 = known_crossing_half_maps(n, shell, dtype=float_dtype)
    f = fsc_curve(h1, h2)
    assert f.size == n // 2 + 1
    np.testing.assert_allclose(f[1:shell], 1.0, atol=1e-5)
    assert np.all(np.abs(f[shell:]) < 0.143)
    res, s = resolution_relion_rule(f, 0.143, box_px=n, pixel_size_a=1.2)
    assert s == shell - 1 and res == pytest.approx(n * 1.2 / (shell - 1))
    interp = resolution_interpolated(f, 0.143, box_px=n, pixel_size_a=1.2)
    assert n * 1.2 / shell <= interp <= n * 1.2 / (shell - 1)


def test_shell_index_is_the_plain_rule():
    from mapgen import plain_shell_index

    for n in (16, 17, 48, 49):
        np.testing.assert_array_equal(rfft_shell_index((n, n, n)), plain_shell_index(n))


def test_fsc_invariants():
    h1, h2, _ = particle_half_maps(40, 1.5)
    f = fsc_curve(h1, h2)
    np.testing.assert_allclose(fsc_curve(h1, h1)[1:], 1.0, atol=1e-6)
    np.testing.assert_allclose(fsc_curve(h2, h1), f, atol=1e-6)  # symmetric
    np.testing.assert_allclose(fsc_curve(3 * h1, h2), f, atol=1e-5)  # scale-free
    with pytest.raises(ValueError, match="shape"):
        fsc_curve(h1, h2[:-1])


@needs_relion
@pytest.mark.parametrize("n", [48, 49])
def test_fsc_equals_relion_image_handler(tmp_path, n):
    h1, h2, _ = particle_half_maps(n, 1.3, seed=n)
    write(tmp_path / "a.mrc", h1, 1.3)
    write(tmp_path / "b.mrc", h2, 1.3)
    proc = run_relion(["relion_image_handler", "--i", "a.mrc", "--fsc", "b.mrc"], cwd=tmp_path)
    (tmp_path / "r.star").write_text(relion_star_text(proc.stdout))
    relion = starfile.read(tmp_path / "r.star")["rlnFourierShellCorrelation"].to_numpy()
    ours = fsc_curve(h1, h2)
    assert ours.size == relion.size
    assert np.abs(ours - relion).max() <= 1e-4  # measured 3.8e-6


def test_randomise_phases_keeps_amplitudes_and_low_shells():
    h1, _, _ = particle_half_maps(32, 1.0)
    r = randomise_phases_beyond(h1, 8, rng=np.random.default_rng(0))
    import scipy.fft as sfft

    a, b = sfft.rfftn(h1), sfft.rfftn(r)
    low = rfft_shell_index(h1.shape) < 8
    np.testing.assert_allclose(b[low], a[low], rtol=1e-4, atol=1e-3)
    # amplitudes are kept except where the inverse transform re-imposes Hermitian symmetry (kx = 0, Nyquist planes)
    inner = np.ones(a.shape, bool)
    inner[..., 0] = False
    inner[..., -1] = False
    np.testing.assert_allclose(np.abs(b[inner]), np.abs(a[inner]), rtol=1e-3, atol=1e-2)
    assert fsc_curve(h1, r)[12:].max() < 0.3


@pytest.mark.parametrize("n,dtype", [(48, np.float32), (45, np.float64)])
def test_expected_randomised_fsc_is_the_mean_of_many_draws(n, dtype):
    """The phase-randomised masked FSC cryobox uses by default (its expectation, computed exactly)
    against the mean of 48 random draws, as relion_postprocess makes one: within 4 standard errors
    of that mean (and 0.003) in every shell; and no randomness: the same numbers every time, with
    the halves swapped too."""
    h1, h2, mask = particle_half_maps(n, 1.4, signal_res_a=5.0, noise=0.5, seed=3)
    h1, h2 = h1.astype(dtype), h2.astype(dtype)
    expected = masked_fsc_analysis(h1, h2, pixel_size_a=1.4, mask=mask)
    draws = np.array(
        [
            masked_fsc_analysis(h1, h2, pixel_size_a=1.4, mask=mask, rng=np.random.default_rng(k)).fsc_random_masked
            for k in range(48)
        ]
    )
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    diff = np.abs(expected.fsc_random_masked - draws.mean(axis=0))
    assert np.all(diff[1:] <= 4 * se[1:] + 0.003), diff.max()
    # beyond the randomisation the draws really scatter, the expectation does not
    r = expected.randomise_at_shell
    assert se[r + 2 :].max() > 0.001
    again = masked_fsc_analysis(h1, h2, pixel_size_a=1.4, mask=mask)
    swapped = masked_fsc_analysis(h2, h1, pixel_size_a=1.4, mask=mask)
    assert np.array_equal(again.fsc_corrected, expected.fsc_corrected)
    np.testing.assert_allclose(swapped.fsc_corrected, expected.fsc_corrected, atol=1e-12)


@pytest.mark.parametrize("curve", ["final", "unmasked"])
def test_measurement_sd_predicts_the_spread_over_noise_realisations(curve):
    """``measurement_sd_a``, the crossing's spread from the FSC's own sampling, against 30 noise
    realisations over one particle: the observed SD of the interpolated 0.143 crossing lies
    within a factor 1.5 of the mean predicted one."""
    n, px = 56, 1.4
    rng = np.random.default_rng(1)
    sig = filter_map(rng.normal(size=(n, n, n)).astype(np.float32), pixel_size_a=px, lowpass_a=5.0)
    sig *= soft_spherical_mask(n, radius_px=0.3 * n, soft_edge_px=0.06 * n)
    sig /= sig.std()
    mask = soft_spherical_mask(n, radius_px=0.36 * n, soft_edge_px=0.1 * n)
    got, predicted = [], []
    for t in range(30):
        r = np.random.default_rng(100 + t)
        h1 = sig + 0.5 * r.normal(size=sig.shape).astype(np.float32)
        h2 = sig + 0.5 * r.normal(size=sig.shape).astype(np.float32)
        res = masked_fsc_analysis(h1, h2, pixel_size_a=px, mask=mask).resolution(0.143, curve=curve)
        got.append(res["interpolated_resolution_a"])
        predicted.append(res["measurement_sd_a"])
    observed, model = np.std(got, ddof=1), np.mean(predicted)
    assert model / 1.5 <= observed <= model * 1.5, (observed, model)


def test_mask_effective_fraction_known_answers():
    """No mask (all ones) keeps every component; a hard ball of diameter D in N px keeps (D/N)^2
    of a shell's; a hard disc keeps D/N of a ring's."""
    assert mask_effective_fraction(np.ones((16, 16, 16), np.float32)) == pytest.approx(1.0)
    ball = soft_spherical_mask(64, radius_px=16, soft_edge_px=0)
    d = (6 * ball.mean() / np.pi) ** (1 / 3)  # the hard ball's own diameter over N, from its voxels
    assert mask_effective_fraction(ball) == pytest.approx(d**2, rel=1e-6)
    assert d == pytest.approx(0.5, rel=0.02)
    disc = soft_spherical_mask(64, radius_px=16, soft_edge_px=0, ndim=2)
    assert mask_effective_fraction(disc) == pytest.approx(np.sqrt(4 * disc.mean() / np.pi), rel=1e-6)


def test_corrected_fsc_formula():
    fm = np.array([-1.0, 0.9, 0.8, 0.6, 0.4, 0.3])
    fr = np.array([-1.0, 0.9, 0.7, 0.3, 0.2, 0.0])
    out = corrected_fsc(fm, fr, 2)
    assert out[0] == 1.0 and out[1] == 0.9 and out[3] == 0.6  # below randomise_at + 2: masked
    assert out[4] == pytest.approx((0.4 - 0.2) / 0.8) and out[5] == pytest.approx(0.3)


@needs_relion
def test_masked_pipeline_agrees_with_relion_postprocess(tmp_path):
    n, px = 96, 1.4
    h1, h2, mask = particle_half_maps(n, px, signal_res_a=5.0, noise=0.5, seed=3)
    for name, d in (("h1.mrc", h1), ("h2.mrc", h2), ("mask.mrc", mask)):
        write(tmp_path / name, d, px)
    (tmp_path / "post").mkdir()
    run_relion(
        [
            "relion_postprocess",
            "--i",
            "h1.mrc",
            "--i2",
            "h2.mrc",
            "--mask",
            "mask.mrc",
            "--angpix",
            str(px),
            "--o",
            "post/postprocess",
        ],
        cwd=tmp_path,
    )
    star = starfile.read(tmp_path / "post" / "postprocess.star")
    rel = star["fsc"]
    ours = masked_fsc_analysis(h1, h2, pixel_size_a=px, mask=mask, rng=np.random.default_rng(0))
    # the deterministic curves agree to numerical precision (shell 0 is RELION's forced 1)
    np.testing.assert_allclose(ours.fsc_unmasked[1:], rel["rlnFourierShellCorrelationUnmaskedMaps"][1:], atol=1e-4)
    np.testing.assert_allclose(ours.fsc_masked[1:], rel["rlnFourierShellCorrelationMaskedMaps"][1:], atol=1e-4)
    assert star["general"]["rlnRandomiseFrom"] == pytest.approx(n * px / ours.randomise_at_shell, rel=1e-4)
    # Phase randomisation draws different random phases here and in RELION. Two independent draws
    # of a random-phase FSC at shell s differ with standard deviation about sqrt(2 / n_s), n_s the
    # number of Fourier components in the shell: allow 4 of those, and never less than 0.02.
    n_s = np.bincount(rfft_shell_index((n, n, n)).ravel(), minlength=n // 2 + 1)[: n // 2 + 1]
    tol = np.maximum(0.02, 4 * np.sqrt(2.0 / n_s))
    for ours_curve, label in (
        (ours.fsc_random_masked, "rlnCorrectedFourierShellCorrelationPhaseRandomizedMaskedMaps"),
        (ours.fsc_corrected, "rlnFourierShellCorrelationCorrected"),
    ):
        diff = np.abs(ours_curve[1:] - rel[label].to_numpy()[1:])
        assert np.all(diff <= tol[1:]), (label, diff.max())
    # cryobox's default, the expectation over all draws, agrees with RELION's one draw likewise
    expected = masked_fsc_analysis(h1, h2, pixel_size_a=px, mask=mask)
    for ours_curve, label in (
        (expected.fsc_random_masked, "rlnCorrectedFourierShellCorrelationPhaseRandomizedMaskedMaps"),
        (expected.fsc_corrected, "rlnFourierShellCorrelationCorrected"),
    ):
        diff = np.abs(ours_curve[1:] - rel[label].to_numpy()[1:])
        assert np.all(diff <= tol[1:] / np.sqrt(2)), (label, diff.max())  # one draw's scatter, not two
    res, shell = resolution_relion_rule(ours.fsc_corrected, 0.143, box_px=n, pixel_size_a=px)
    relion_shell = round(n * px / star["general"]["rlnFinalResolution"])
    assert abs(shell - relion_shell) <= 1


def test_auto_mask_is_soft_and_bounded():
    h1, h2, _ = particle_half_maps(48, 1.5)
    avg = filter_map(0.5 * (h1 + h2), pixel_size_a=1.5, lowpass_a=15)
    m = auto_mask(avg, threshold=float(avg.mean() + 2 * avg.std()), extend_px=2, soft_edge_px=4)
    assert m.min() >= 0 and m.max() == 1.0
    assert 0 < np.mean((m > 0) & (m < 1))  # has a soft edge
    core = avg >= avg.mean() + 2 * avg.std()
    assert np.all(m[core] == 1.0)
    with pytest.raises(ValueError, match="threshold"):
        auto_mask(avg, threshold=1e9)


@needs_relion
@pytest.mark.parametrize("n", [48, 49])
@pytest.mark.parametrize("mode", ["lowpass", "highpass"])
def test_filter_equals_relion_image_handler(tmp_path, n, mode):
    rng = np.random.default_rng(n)
    vol = rng.normal(size=(n, n, n)).astype(np.float32)
    write(tmp_path / "v.mrc", vol, 1.1)
    res = 5.0 if mode == "lowpass" else 12.0
    run_relion(["relion_image_handler", "--i", "v.mrc", f"--{mode}", str(res), "--o", "r.mrc"], cwd=tmp_path)
    relion = mrcfile.open(tmp_path / "r.mrc").data
    kw = {"lowpass_a": res} if mode == "lowpass" else {"highpass_a": res}
    ours = filter_map(vol, pixel_size_a=1.1, **kw)
    # RELION's raised-cosine edge, value for value: measured max 1.5e-6 of the SD
    assert np.abs(ours - relion).max() <= 1e-5 * relion.std(), np.abs(ours - relion).max() / relion.std()


@needs_relion
@pytest.mark.parametrize("n,new", [(48, 32), (48, 64), (49, 33), (49, 64)])
def test_window_equals_relion_new_box(tmp_path, n, new):
    vol = np.random.default_rng(1).normal(size=(n, n, n)).astype(np.float32)
    write(tmp_path / "v.mrc", vol, 1.0)
    run_relion(["relion_image_handler", "--i", "v.mrc", "--new_box", str(new), "--o", "w.mrc"], cwd=tmp_path)
    relion = mrcfile.open(tmp_path / "w.mrc").data
    np.testing.assert_array_equal(window(vol, new), relion)


@pytest.mark.parametrize("n,new", [(64, 48), (64, 96), (63, 45), (63, 90), (48, 49)])
def test_fourier_rescale_invariants(n, new, float_dtype):
    px = 1.0
    # a band-limited, centred blob: survives cropping and comes back after padding
    blob = filter_map(np.random.default_rng(0).normal(size=(n, n, n)), pixel_size_a=px, lowpass_a=6.0)
    blob = (blob * soft_spherical_mask(n, radius_px=n / 4, soft_edge_px=4)).astype(float_dtype)
    out, achieved = fourier_rescale(blob, new, pixel_size_a=px)
    assert out.shape == (new,) * 3 and achieved == pytest.approx(px * n / new)
    # the mean (density per Å^3) is preserved, and the total mass scales with the voxel volume
    assert out.mean() == pytest.approx(blob.mean(), abs=1e-5)
    back, px_back = fourier_rescale(out, n, pixel_size_a=achieved)
    assert px_back == pytest.approx(px)
    assert np.corrcoef(back.ravel(), blob.ravel())[0, 1] > 0.999
    # a centred point stays centred
    point = np.zeros((n, n, n), np.float32)
    point[n // 2, n // 2, n // 2] = 1
    p2, _ = fourier_rescale(point, new, pixel_size_a=px)
    assert np.unravel_index(np.argmax(p2), p2.shape) == (new // 2,) * 3


def test_window_centre_invariant():
    for n, new in ((8, 5), (8, 12), (9, 4), (9, 14)):
        img = np.zeros((3, n, n))
        img[:, n // 2, n // 2] = 1
        w = window(img, new, ndim=2)
        assert w.shape == (3, new, new) and np.all(w[:, new // 2, new // 2] == 1)


# ------------------------------------------------------------------------------------------- CLI


def test_fsc_cli_outputs(cli, tmp_path):
    n, px = 48, 1.5
    h1, h2, mask = particle_half_maps(n, px)
    for name, d in (("h1.mrc", h1), ("h2.mrc", h2), ("mask.mrc", mask)):
        write(tmp_path / name, d, px)
    r = cli(
        "fsc",
        tmp_path / "h1.mrc",
        tmp_path / "h2.mrc",
        "--mask",
        tmp_path / "mask.mrc",
        "--seed",
        1,
        "--json",
        "--star",
        tmp_path / "fsc.star",
        "--plot",
        tmp_path / "fsc.png",
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["box_px"] == n and d["pixel_size_a"] == pytest.approx(px)
    assert set(d["resolutions"]) == {"0.143", "0.5"}
    assert d["resolutions"]["0.5"]["resolution_a"] >= d["resolutions"]["0.143"]["resolution_a"]
    assert len(d["curves"]["fsc_corrected"]) == n // 2 + 1
    star = starfile.read(tmp_path / "fsc.star")
    assert star["general"]["rlnFinalResolution"] == pytest.approx(d["resolution_a"])
    assert {
        "rlnFourierShellCorrelationCorrected",
        "rlnFourierShellCorrelationUnmaskedMaps",
        "rlnFourierShellCorrelationMaskedMaps",
        "rlnCorrectedFourierShellCorrelationPhaseRandomizedMaskedMaps",
        "rlnAngstromResolution",
    } <= set(star["fsc"].columns)
    assert (tmp_path / "fsc.png").stat().st_size > 10_000
    (tmp_path / "fsc.json").write_text(r.output)
    # auto mask is written out
    r2 = cli(
        "fsc", tmp_path / "h1.mrc", tmp_path / "h2.mrc", "--auto-mask", "--mask-out", tmp_path / "am.mrc", "--json"
    )
    assert r2.exit_code == 0, r2.output
    assert mrcfile.open(tmp_path / "am.mrc").data.shape == (n, n, n)
    # compare reads both our outputs and agrees with itself
    c = cli(
        "compare",
        f"star={tmp_path / 'fsc.star'}",
        f"json={tmp_path / 'fsc.json'}",
        "--json",
        "--plot",
        tmp_path / "cmp.png",
    )
    assert c.exit_code == 0, c.output
    runs = json.loads(c.output)["runs"]
    assert runs[0]["resolution_0.143_a"] == pytest.approx(runs[1]["resolution_0.143_a"])
    assert runs[0]["box_px"] == n and runs[0]["pixel_size_a"] == pytest.approx(px)


def test_compare_boxes_on_one_angstrom_axis(cli, tmp_path):
    """Maps of 48 and 64 px at the same pixel size: same shell-independent crossing in Å."""
    rows = []
    for n, shell in ((48, 12), (64, 16)):
        h1, h2 = known_crossing_half_maps(n, shell)
        write(tmp_path / f"a{n}.mrc", h1, 1.0)
        write(tmp_path / f"b{n}.mrc", h2, 1.0)
        r = cli("fsc", tmp_path / f"a{n}.mrc", tmp_path / f"b{n}.mrc", "--json")
        (tmp_path / f"f{n}.json").write_text(r.output)
        rows.append(f"box{n}={tmp_path / f'f{n}.json'}")
    (tmp_path / "cs.txt").write_text(
        "wave_number fsc fsc_noisesub\n"
        + "\n".join(f"{s} {1.0 if s < 16 else 0.0} {1.0 if s < 16 else 0.0}" for s in range(33))
    )
    c = cli("compare", *rows, f"cs={tmp_path / 'cs.txt'}", "--box", 64, "--pixel-size", 1.0, "--json")
    assert c.exit_code == 0, c.output
    runs = json.loads(c.output)["runs"]
    assert [r["resolution_0.143_interpolated_a"] for r in runs] == pytest.approx(
        [48 / 11.5, 64 / 15.5, 64 / 15.5], rel=0.05
    )
    assert runs[2]["curve"] == "fsc_noisesub"


@needs_relion
def test_compare_reads_relion_postprocess(cli, tmp_path):
    n, px = 48, 1.5
    h1, h2, mask = particle_half_maps(n, px)
    for name, d in (("h1.mrc", h1), ("h2.mrc", h2), ("mask.mrc", mask)):
        write(tmp_path / name, d, px)
    (tmp_path / "post").mkdir()
    run_relion(
        [
            "relion_postprocess",
            "--i",
            "h1.mrc",
            "--i2",
            "h2.mrc",
            "--mask",
            "mask.mrc",
            "--angpix",
            str(px),
            "--o",
            "post/postprocess",
        ],
        cwd=tmp_path,
    )
    c = cli("compare", tmp_path / "post" / "postprocess.star", "--json")
    assert c.exit_code == 0, c.output
    run = json.loads(c.output)["runs"][0]
    assert run["box_px"] == n and run["pixel_size_a"] == pytest.approx(px)
    assert run["resolution_0.143_a"] == pytest.approx(
        starfile.read(tmp_path / "post" / "postprocess.star")["general"]["rlnFinalResolution"]
    )


def test_filter_and_resample_cli(cli, tmp_path):
    vol = np.random.default_rng(0).normal(size=(32, 32, 32)).astype(np.float32)
    write(tmp_path / "v.mrc", vol, 1.0)
    assert (
        cli("filter", tmp_path / "v.mrc", "--lowpass", 4, "--bfactor", -20, "--out", tmp_path / "f.mrc").exit_code == 0
    )
    r = cli("resample", tmp_path / "v.mrc", "--to-pixel-size", 1.6, "--box", 24, "--out", tmp_path / "r.mrc", "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["box_px"] == 24 and info["pixel_size_a"] == pytest.approx(1.6)
    with mrcfile.open(tmp_path / "r.mrc") as m:
        assert m.data.shape == (24, 24, 24) and m.voxel_size.x == pytest.approx(1.6)


def test_fsc_bad_input_exits_2(cli, tmp_path):
    rng = np.random.default_rng(0)
    write(tmp_path / "a.mrc", rng.standard_normal((16, 16, 16)), 1.0)
    write(tmp_path / "b.mrc", rng.standard_normal((18, 18, 18)), 1.0)
    write(tmp_path / "c.mrc", rng.standard_normal((16, 16, 16)), 1.2)
    with mrcfile.new(tmp_path / "nopx.mrc") as m:
        m.set_data(rng.standard_normal((16, 16, 16)).astype(np.float32))
    for args, words in (
        ((tmp_path / "a.mrc", tmp_path / "b.mrc"), "box"),
        ((tmp_path / "a.mrc", tmp_path / "c.mrc"), "Å/px"),
        ((tmp_path / "nopx.mrc", tmp_path / "a.mrc"), "pixel size"),
        ((tmp_path / "a.mrc", tmp_path / "missing.mrc"), "no such"),
    ):
        r = cli("fsc", *args)
        assert r.exit_code == 2, r.output
        assert words in r.output and "Traceback" not in r.output
