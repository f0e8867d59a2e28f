import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryobox.api import advise_box
from cryobox.core.boxsize import (
    _smallest_clipping_even_box,
    aliasing_free_box_a,
    aliasing_limited_resolution_a,
    edge_clipped,
    fft_friendly_sizes,
    is_fft_friendly,
    next_fft_friendly_size,
    rosenthal_henderson_box_a,
)
from cryobox.core.optics import ctf_1d, electron_wavelength_a

defocus = st.floats(min_value=3000, max_value=50000)
resolution = st.floats(min_value=2.2, max_value=12.0)
voltage = st.sampled_from([100.0, 200.0, 300.0])
cs = st.sampled_from([0.0, 0.01, 1.4, 2.7])


def test_rosenthal_henderson_known_answer():
    lam = electron_wavelength_a(300)
    # the classic B = D + 2 lambda dF / d (Cs = 0)
    assert rosenthal_henderson_box_a(220, 3.7, defocus_a=30000, voltage_kv=300) == pytest.approx(
        220 + 2 * lam * 30000 / 3.7
    )
    assert rosenthal_henderson_box_a(220, 3.7, defocus_a=30000, voltage_kv=300) == pytest.approx(539.26, abs=0.01)
    # Cs pulls the delocalisation back at high resolution: B = D + 2 (lambda dF k - Cs lambda^3 k^3)
    k = 1 / 3.7
    expected = 220 + 2 * (lam * 30000 * k - 2.7e7 * lam**3 * k**3)
    assert rosenthal_henderson_box_a(220, 3.7, defocus_a=30000, voltage_kv=300, cs_mm=2.7) == pytest.approx(expected)
    # at 200 kV the wavelength is longer and so is the box
    assert rosenthal_henderson_box_a(220, 3.7, defocus_a=30000, voltage_kv=200) > rosenthal_henderson_box_a(
        220, 3.7, defocus_a=30000, voltage_kv=300
    )


def test_aliasing_box_is_the_rh_box_without_the_particle_and_ctf2_doubles_it():
    kw = dict(defocus_a=25000, voltage_kv=300, cs_mm=2.7)
    a1 = aliasing_free_box_a(3.5, **kw)
    assert a1 == pytest.approx(rosenthal_henderson_box_a(180, 3.5, **kw) - 180)
    assert aliasing_free_box_a(3.5, ctf_power=2, **kw) == pytest.approx(2 * a1)


@pytest.mark.parametrize("box_px", [200, 201, 256, 333])
def test_aliasing_limit_agrees_with_sampled_ctf_phase_steps(box_px):
    """Independent check: on the box's Fourier grid, the CTF phase step between neighbouring
    samples stays below pi up to the reported limit and exceeds it just beyond."""
    px, df, kv, cs_mm = 1.06, 28000.0, 300.0, 2.7
    limit_a = aliasing_limited_resolution_a(box_px, px, defocus_a=df, voltage_kv=kv, cs_mm=cs_mm)
    lam, cs_a = electron_wavelength_a(kv), cs_mm * 1e7
    k = np.arange(0, box_px // 2 + 1) / (box_px * px)
    chi = np.pi * lam * df * k**2 - 0.5 * np.pi * cs_a * lam**3 * k**4
    step = np.abs(np.diff(chi))
    mid = 0.5 * (k[1:] + k[:-1])
    assert np.all(step[mid < 1 / limit_a - 2 / (box_px * px)] < np.pi * 1.01)
    if limit_a > 2 * px * 1.01:
        assert np.any(step[mid > 1 / limit_a + 2 / (box_px * px)] > np.pi)


@settings(max_examples=60, deadline=None)
@given(df=defocus, res=resolution, kv=voltage, cs_mm=cs)
def test_aliasing_free_box_reaches_exactly_its_resolution(df, res, kv, cs_mm):
    px = 0.9
    if res < 2 * px:
        return
    box_a = aliasing_free_box_a(res, defocus_a=df, voltage_kv=kv, cs_mm=cs_mm)
    got = aliasing_limited_resolution_a(box_a / px * (1 + 1e-9), px, defocus_a=df, voltage_kv=kv, cs_mm=cs_mm)
    assert got <= res * (1 + 1e-6)
    smaller = aliasing_limited_resolution_a(box_a / px * 0.98, px, defocus_a=df, voltage_kv=kv, cs_mm=cs_mm)
    assert smaller > res * (1 - 1e-9)


@settings(max_examples=80, deadline=None)
@given(df1=defocus, df2=defocus, res=resolution, kv=voltage, cs_mm=cs, d=st.floats(50, 500))
def test_boxes_are_monotone_in_defocus(df1, df2, res, kv, cs_mm, d):
    lo, hi = sorted((df1, df2))
    # With Cs, at low defocus the Cs term dominates: lambda df k - Cs lambda^3 k^3 < 0 at the target,
    # and more defocus then *reduces* the delocalisation. Monotone in the defocus-dominated regime.
    lam = electron_wavelength_a(kv)
    if lo < cs_mm * 1e7 * lam**2 / res**2:
        return
    assert (
        rosenthal_henderson_box_a(d, res, defocus_a=lo, voltage_kv=kv, cs_mm=cs_mm)
        <= rosenthal_henderson_box_a(d, res, defocus_a=hi, voltage_kv=kv, cs_mm=cs_mm) + 1e-9
    )
    assert (
        aliasing_free_box_a(res, defocus_a=lo, voltage_kv=kv, cs_mm=cs_mm)
        <= aliasing_free_box_a(res, defocus_a=hi, voltage_kv=kv, cs_mm=cs_mm) + 1e-9
    )


@settings(max_examples=80, deadline=None)
@given(df=defocus, r1=resolution, r2=resolution, kv=voltage, cs_mm=cs)
def test_finer_target_never_needs_a_smaller_box(df, r1, r2, kv, cs_mm):
    coarse, fine = max(r1, r2), min(r1, r2)
    assert (
        aliasing_free_box_a(fine, defocus_a=df, voltage_kv=kv, cs_mm=cs_mm)
        >= aliasing_free_box_a(coarse, defocus_a=df, voltage_kv=kv, cs_mm=cs_mm) - 1e-9
    )


@settings(max_examples=40, deadline=None)
@given(box1=st.integers(64, 800), box2=st.integers(64, 800), df=defocus, kv=voltage, cs_mm=cs)
def test_bigger_box_never_aliases_earlier(box1, box2, df, kv, cs_mm):
    small, big = sorted((box1, box2))
    r_small = aliasing_limited_resolution_a(small, 1.0, defocus_a=df, voltage_kv=kv, cs_mm=cs_mm)
    r_big = aliasing_limited_resolution_a(big, 1.0, defocus_a=df, voltage_kv=kv, cs_mm=cs_mm)
    assert r_big <= r_small * (1 + 1e-9)
    assert r_big >= 2.0 - 1e-12  # never past Nyquist


@settings(max_examples=25, deadline=None)
@given(rows=st.lists(st.tuples(defocus, st.floats(0, 800)), min_size=5, max_size=40), res=st.floats(2.5, 8.0))
def test_advice_is_symmetric_in_astigmatism(rows, res):
    u = np.array([r[0] for r in rows])
    v = u + np.array([r[1] for r in rows])
    kw = dict(diameter_a=150, resolution_a=res, pixel_size_a=1.0, voltage_kv=300, cs_mm=2.7)
    a = advise_box(defocus_u_a=u, defocus_v_a=v, **kw)
    b = advise_box(defocus_u_a=v, defocus_v_a=u, **kw)
    assert a.recommended_refine_box_px == b.recommended_refine_box_px
    assert a.recommended_extract_box_px == b.recommended_extract_box_px
    assert [c.aliasing_free_fraction for c in a.candidates] == [c.aliasing_free_fraction for c in b.candidates]


def test_fft_friendly_sizes():
    assert is_fft_friendly(280) and is_fft_friendly(576) and is_fft_friendly(2)
    assert not is_fft_friendly(282)  # 2 * 3 * 47
    assert not is_fft_friendly(275)  # odd
    assert fft_friendly_sizes(250, 260) == [250, 252, 256]
    assert next_fft_friendly_size(281) == 288
    assert next_fft_friendly_size(280) == 280
    for n in fft_friendly_sizes(2, 2000):
        assert n % 2 == 0 and is_fft_friendly(n)


def test_edge_clipping_closed_form_matches_the_direct_test():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-5, 1005, 4000), rng.uniform(-5, 805, 4000)
    w, h = np.full(4000, 1000.0), np.full(4000, 800.0)
    limit = _smallest_clipping_even_box(x, y, w, h)
    for box in (2, 64, 128, 256, 400, 1000):
        direct = edge_clipped(x, y, micrograph_width_px=w, micrograph_height_px=h, box_px=box)
        np.testing.assert_array_equal(direct, limit <= box)


def test_edge_clipped_box_centre_is_n_over_2():
    # a particle at x = 32 in a 64 px box starts exactly at pixel 0: not clipped; at 31.4 it is
    assert not edge_clipped(32, 100, micrograph_width_px=500, micrograph_height_px=500, box_px=64)
    assert edge_clipped(31.4, 100, micrograph_width_px=500, micrograph_height_px=500, box_px=64)
    # right edge: span [x - 32, x + 32) must end at <= 500
    assert not edge_clipped(468, 100, micrograph_width_px=500, micrograph_height_px=500, box_px=64)
    assert edge_clipped(469, 100, micrograph_width_px=500, micrograph_height_px=500, box_px=64)


def test_advice_on_the_motivating_case():
    rng = np.random.default_rng(0)
    n = 20000
    mean = rng.uniform(18000, 30000, n)
    adv = advise_box(
        diameter_a=220,
        resolution_a=3.7,
        pixel_size_a=1.06,
        defocus_u_a=mean + 100,
        defocus_v_a=mean - 100,
        voltage_kv=300,
        cs_mm=2.7,
        coord_x_px=rng.uniform(0, 5760, n),
        coord_y_px=rng.uniform(0, 4092, n),
        micrograph_width_px=5760,
        micrograph_height_px=4092,
    )
    boxes = [c.box_px for c in adv.candidates]
    assert all(is_fft_friendly(b) for b in boxes) and boxes == sorted(boxes)
    assert boxes[0] * 1.06 >= 1.2 * 220 - 1.06 * 10
    assert boxes[-1] * 1.06 >= adv.rosenthal_henderson_box_a
    by = {c.box_px: c for c in adv.candidates}
    refine, extract = adv.recommended_refine_box_px, adv.recommended_extract_box_px
    assert refine * 1.06 >= 1.5 * 220 and by[refine].aliasing_free_fraction >= 0.99
    # no smaller friendly box >= 1.5 D would do
    need = aliasing_free_box_a(3.7, defocus_a=mean + 100, voltage_kv=300, cs_mm=2.7)
    for b in fft_friendly_sizes(int(np.ceil(1.5 * 220 / 1.06)), refine - 1):
        assert (need <= b * 1.06).mean() < 0.99
    assert extract > refine and adv.premultiply and by[extract].delocalisation_fraction >= 0.99
    # fractions are monotone in the box; edge loss grows with it; costs are B^2 and B^3
    for key in (
        "aliasing_free_fraction",
        "ctf2_aliasing_free_fraction",
        "delocalisation_fraction",
        "edge_loss_fraction",
    ):
        vals = [getattr(c, key) for c in adv.candidates]
        assert vals == sorted(vals)
    c0 = adv.candidates[0]
    for c in adv.candidates:
        assert c.relative_cost_2d == pytest.approx((c.box_px / c0.box_px) ** 2)
        assert c.relative_cost_3d == pytest.approx((c.box_px / c0.box_px) ** 3)
    assert any("premultiply" in r for r in adv.reasons)


def test_advice_edge_fraction_equals_direct_count():
    rng = np.random.default_rng(5)
    n = 3000
    x, y = rng.uniform(0, 2000, n), rng.uniform(0, 1500, n)
    adv = advise_box(
        diameter_a=100,
        resolution_a=4,
        pixel_size_a=1.0,
        defocus_u_a=15000,
        defocus_v_a=15000,
        voltage_kv=300,
        cs_mm=2.7,
        coord_x_px=x,
        coord_y_px=y,
        micrograph_width_px=2000,
        micrograph_height_px=1500,
    )
    for c in adv.candidates:
        direct = edge_clipped(x, y, micrograph_width_px=2000, micrograph_height_px=1500, box_px=c.box_px).mean()
        assert c.edge_loss_fraction == pytest.approx(direct)


def test_advice_rejects_targets_past_nyquist():
    with pytest.raises(ValueError, match="Nyquist"):
        advise_box(
            diameter_a=100,
            resolution_a=1.5,
            pixel_size_a=1.0,
            defocus_u_a=1e4,
            defocus_v_a=1e4,
            voltage_kv=300,
            cs_mm=2.7,
        )


def test_ctf_sampled_on_an_aliasing_free_box_has_no_sign_flip_skipped():
    """Known answer: in the alias-free box, consecutive samples never skip a full CTF half-period."""
    res, df = 4.0, 20000.0
    box_a = aliasing_free_box_a(res, defocus_a=df, voltage_kv=300, cs_mm=2.7)
    px = 1.0
    n = int(np.ceil(box_a / px)) + 2
    k = np.arange(int(n * px / res) + 1) / (n * px)
    fine = np.linspace(0, k[-1], 200001)
    crossings_fine = np.count_nonzero(
        np.diff(np.sign(ctf_1d(fine, defocus_a=df, voltage_kv=300, cs_mm=2.7, amplitude_contrast=0.1)))
    )
    crossings_box = np.count_nonzero(
        np.diff(np.sign(ctf_1d(k, defocus_a=df, voltage_kv=300, cs_mm=2.7, amplitude_contrast=0.1)))
    )
    assert crossings_box == crossings_fine


@pytest.mark.parametrize("u,v", [(30000.0, 27000.0), (27000.0, 30000.0)])
def test_advisor_uses_the_larger_defocus_worked_by_hand(u, v):
    """One particle, 3,000 Å astigmatism, 3.7 Å at 1.06 Å/px, 300 kV, Cs 2.7 mm, D = 100 Å.

    By hand, with the larger defocus (30,000 Å): λ = 0.0196875 Å, k = 1/3.7 Å⁻¹,
    R = λ Δf k − Cs λ³ k³ = 159.63 − 4.07 = 155.56 Å, so the CTF needs 2 R = 311.1 Å = 293.5 px:
    the smallest FFT-friendly even box is 294 px (2·3·7²). With the smaller defocus (27,000 Å) it
    would be 279.2 Å = 263.4 px, hence 270 px: the wrong answer this test catches.
    """
    lam, k, cs_a = 0.0196875, 1 / 3.7, 2.7e7
    r = lam * 30000 * k - cs_a * lam**3 * k**3
    assert r == pytest.approx(155.56, abs=0.05)
    adv = advise_box(
        diameter_a=100, resolution_a=3.7, pixel_size_a=1.06, defocus_u_a=[u], defocus_v_a=[v], voltage_kv=300, cs_mm=2.7
    )
    assert adv.aliasing_free_box_a == pytest.approx(2 * r, abs=0.2)
    assert adv.recommended_refine_box_px == 294
