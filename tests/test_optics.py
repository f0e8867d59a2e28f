import mrcfile
import numpy as np
import pytest

from conftest import needs_relion, run_relion
from cryobox.core.optics import (
    ctf_1d,
    ctf_2d,
    ctf_2d_on_box,
    electron_wavelength_a,
    local_oscillation_a,
    max_local_oscillation_a,
    spatial_frequency_grid_2d,
)

RELION_CASES = [
    # box, pixel, defU, defV, angle, kV, Cs, Q0, phase shift
    (64, 1.06, 20000, 18000, 30, 300, 2.7, 0.1, 0),
    (63, 1.06, 20000, 18000, 30, 300, 2.7, 0.1, 0),
    (128, 0.85, 15000, 14000, -60, 200, 2.0, 0.07, 0),
    (97, 1.5, 30000, 25000, 120, 200, 1.4, 0.1, 45),
    (100, 1.2, 10000, 10000, 0, 300, 0.01, 0.15, 90),
    (81, 2.0, 25000, 23500, 75, 300, 2.7, 0.1, 10),
]


def test_wavelength_known_values():
    assert electron_wavelength_a(300) == pytest.approx(0.019688, abs=1e-6)
    assert electron_wavelength_a(200) == pytest.approx(0.025079, abs=1e-6)
    assert electron_wavelength_a(100) == pytest.approx(0.037014, abs=1e-6)
    np.testing.assert_allclose(electron_wavelength_a(np.array([200.0, 300.0])), [0.025079, 0.019688], atol=1e-6)
    with pytest.raises(ValueError):
        electron_wavelength_a(0)


@needs_relion
@pytest.mark.parametrize("case", RELION_CASES, ids=lambda c: f"N{c[0]}_{c[5]}kV_ang{c[4]}_ps{c[8]}")
def test_ctf_image_equals_relion_ctf_toolbox(tmp_path, case):
    box, px, du, dv, ang, kv, cs, q0, ps = case
    run_relion(
        [
            "relion_ctf_toolbox",
            "--simulate",
            "ctf.mrc",
            "--angpix",
            str(px),
            "--box",
            str(box),
            "--kV",
            str(kv),
            "--Cs",
            str(cs),
            "--Q0",
            str(q0),
            "--defU",
            str(du),
            "--defV",
            str(dv),
            "--defAng",
            str(ang),
            "--phase_shift",
            str(ps),
        ],
        cwd=tmp_path,
    )
    with mrcfile.open(tmp_path / "ctf.mrc", permissive=True) as m:
        relion = np.array(m.data, dtype=np.float64)
    ours = ctf_2d_on_box(
        box,
        px,
        defocus_u_a=du,
        defocus_v_a=dv,
        defocus_angle_deg=ang,
        voltage_kv=kv,
        cs_mm=cs,
        amplitude_contrast=q0,
        phase_shift_deg=ps,
        dtype=np.float64,
    )
    assert ours.shape == relion.shape == (box, box)
    assert np.abs(ours - relion).max() < 1e-4


@pytest.mark.parametrize("n", [32, 33])
def test_centred_grid_origin_at_n_over_2(n, float_dtype):
    ky, kx = spatial_frequency_grid_2d(n, 1.3)
    assert ky[n // 2, n // 2] == 0 and kx[n // 2, n // 2] == 0
    img = ctf_2d_on_box(
        n,
        1.3,
        defocus_u_a=1e4,
        defocus_v_a=1e4,
        defocus_angle_deg=0,
        voltage_kv=300,
        cs_mm=2.7,
        amplitude_contrast=0.1,
        dtype=float_dtype,
    )
    assert img.dtype == float_dtype
    # the origin holds sin(arctan(Q0 / sqrt(1 - Q0^2))) = Q0
    assert img[n // 2, n // 2] == pytest.approx(0.1, abs=1e-6)
    # isotropic CTF: symmetric under k -> -k about the centre (rows/cols 1..N-1 for even N)
    s = 1 if n % 2 == 0 else 0
    sub = img[s:, s:]
    np.testing.assert_allclose(sub, sub[::-1, ::-1], atol=1e-6)


@pytest.mark.parametrize("n", [48, 49])
def test_rfft_layout_matches_centred_layout(n):
    kw = dict(
        defocus_u_a=21000, defocus_v_a=19000, defocus_angle_deg=33, voltage_kv=300, cs_mm=2.7, amplitude_contrast=0.1
    )
    centred = ctf_2d_on_box(n, 1.1, dtype=np.float64, **kw)
    full = np.fft.ifftshift(centred)
    rfft = ctf_2d_on_box(n, 1.1, layout="rfft", dtype=np.float64, **kw)
    # for even N the Nyquist column is +N/2 in rfft and -N/2 in the centred layout (the same
    # frequency only for a CTF symmetric in kx alone), so compare the columns below it
    cols = n // 2 if n % 2 == 0 else n // 2 + 1
    np.testing.assert_allclose(rfft[:, :cols], full[:, :cols], atol=1e-12)


def test_ctf_1d_is_the_2d_ctf_along_the_defocus_u_direction():
    k = np.linspace(0, 0.4, 200)
    ang = 25.0
    t = np.deg2rad(ang)
    two_d = ctf_2d(
        k * np.sin(t),
        k * np.cos(t),
        defocus_u_a=22000,
        defocus_v_a=20000,
        defocus_angle_deg=ang,
        voltage_kv=300,
        cs_mm=2.7,
        amplitude_contrast=0.1,
    )
    one_d = ctf_1d(k, defocus_a=22000, voltage_kv=300, cs_mm=2.7, amplitude_contrast=0.1)
    np.testing.assert_allclose(two_d, one_d, atol=1e-12)


def test_bfactor_envelope_and_power():
    k = np.linspace(0, 0.3, 50)
    kw = dict(defocus_a=20000, voltage_kv=300, cs_mm=2.7, amplitude_contrast=0.1)
    plain = ctf_1d(k, **kw)
    np.testing.assert_allclose(ctf_1d(k, bfactor_a2=100, **kw), plain * np.exp(-25 * k**2))
    np.testing.assert_allclose(ctf_1d(k, power=2, **kw), plain**2)


def test_local_oscillation_is_the_phase_derivative():
    """R(k) = |d chi / dk| / (2 pi), checked by finite differences of chi."""
    lam, cs_a, df = electron_wavelength_a(300), 2.7e7, 25000.0
    k = np.linspace(0.01, 0.45, 100)
    chi = lambda kk: np.pi * lam * df * kk**2 - 0.5 * np.pi * cs_a * lam**3 * kk**4  # noqa: E731
    h = 1e-7
    numeric = np.abs(chi(k + h) - chi(k - h)) / (2 * h) / (2 * np.pi)
    np.testing.assert_allclose(local_oscillation_a(k, defocus_a=df, voltage_kv=300, cs_mm=2.7), numeric, rtol=1e-5)


def test_max_local_oscillation_matches_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(50):
        df, kmax, cs = rng.uniform(2000, 40000), rng.uniform(0.05, 1.2), rng.choice([0.0, 0.01, 2.7])
        grid = np.linspace(0, kmax, 200001)
        brute = local_oscillation_a(grid, defocus_a=df, voltage_kv=300, cs_mm=cs).max()
        assert max_local_oscillation_a(kmax, defocus_a=df, voltage_kv=300, cs_mm=cs) == pytest.approx(brute, rel=1e-6)


@pytest.mark.parametrize("n", [64, 65])
def test_bfactor_envelope_of_the_2d_grids_is_relions(n):
    """The envelope of every 2D CTF grid (simulation, premultiplied extraction) is RELION's
    exp(-B k^2 / 4), with k written out plainly here (1/Å) rather than taken from the code."""
    from cryobox.core.extract import ctf_rfft_grid
    from cryobox.core.optics import CtfParams, ctf_2d_on_box

    px, b = 1.3, 150.0
    kw = dict(
        defocus_u_a=21000, defocus_v_a=19500, defocus_angle_deg=35, voltage_kv=300, cs_mm=2.7, amplitude_contrast=0.1
    )
    ky = np.fft.fftfreq(n, d=px)[:, None]
    kx = np.fft.rfftfreq(n, d=px)[None, :]
    envelope = np.exp(-b / 4.0 * (kx**2 + ky**2))
    plain = ctf_2d_on_box(n, px, **kw, layout="rfft", dtype=np.float64)
    damped = ctf_2d_on_box(n, px, **kw, bfactor_a2=b, layout="rfft", dtype=np.float64)
    np.testing.assert_allclose(damped, plain * envelope, atol=1e-6)
    grid0 = ctf_rfft_grid(n, px, CtfParams(**kw))
    grid_b = ctf_rfft_grid(n, px, CtfParams(**kw, bfactor_a2=b))
    np.testing.assert_allclose(grid_b, grid0 * envelope, atol=1e-5)
    assert envelope.min() < 0.25  # the test has teeth: the envelope is far from 1 at Nyquist


def test_ctf_params_from_columns_and_on_grid():
    """CtfParams reads canonical column names (the B-factor and scale under their table names,
    defaults 0 and 1) and gives ctf_2d's values, without its scale."""
    from cryobox.core.extract import ctf_rfft_grid
    from cryobox.core.optics import CtfParams, ctf_2d

    row = dict(
        defocus_u_a=15000.0,
        defocus_v_a=14000.0,
        defocus_angle_deg=20.0,
        voltage_kv=200.0,
        cs_mm=2.7,
        amplitude_contrast=0.07,
        ctf_bfactor_a2=40.0,
        ctf_scale=0.5,
    )
    p = CtfParams.from_columns(row)
    assert (p.bfactor_a2, p.scale, p.phase_shift_deg) == (40.0, 0.5, 0.0)
    ky, kx = np.fft.fftfreq(33, d=1.2)[:, None], np.fft.rfftfreq(33, d=1.2)[None, :]
    ref = ctf_2d(
        ky,
        kx,
        defocus_u_a=15000.0,
        defocus_v_a=14000.0,
        defocus_angle_deg=20.0,
        voltage_kv=200.0,
        cs_mm=2.7,
        amplitude_contrast=0.07,
        bfactor_a2=40.0,
    )
    np.testing.assert_allclose(p.on_grid(ky, kx), ref)
    # the extraction grid carries the scale (odd box: numpy's and RELION's rows agree)
    np.testing.assert_allclose(ctf_rfft_grid(33, 1.2, p), 0.5 * ref, atol=1e-6)
