"""The memory-lean FSC path (issue 27): in-place transforms, slab-wise shell sums, the bounded
distance of the auto mask, maps read into their transform buffers, and the big-map MRC writer.
Each is checked against the straightforward computation it replaces."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
import scipy.fft as sfft
from scipy.ndimage import distance_transform_edt

import cryobox.io.mrc as mrc_io
from cryobox.core.fourier import (
    filter_map,
    irfftn_in_place,
    padded_volume,
    rfft_shell_index,
    rfftn_in_place,
    spectrum_buffer,
)
from cryobox.core.fsc import masked_fsc_analysis, shell_sums_rfft
from cryobox.core.masks import AutoMaskSettings, _bounded_distance, auto_mask, auto_mask_from_map, soft_spherical_mask
from cryobox.core.shells import ShellGrid
from cryobox.errors import InputError
from cryobox.io.mrc import read_map, read_map_header, read_map_into, write_mrc


@pytest.mark.parametrize("shape", [(32, 32, 32), (33, 33, 33), (24, 25), (40, 40)])
def test_in_place_transforms_equal_scipy(shape):
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    v = padded_volume(shape)
    v[...] = x
    buffer = spectrum_buffer(v)
    assert buffer is not None and buffer.shape == shape[:-1] + (shape[-1] // 2 + 1,)
    spectrum = rfftn_in_place(buffer, shape[-1])
    assert spectrum is buffer
    np.testing.assert_array_equal(spectrum, sfft.rfftn(x))  # the same pocketfft transforms
    back = irfftn_in_place(buffer, shape[-1])
    assert np.shares_memory(back, buffer)
    np.testing.assert_allclose(back, sfft.irfftn(sfft.rfftn(x), s=shape), atol=1e-6)
    np.testing.assert_allclose(back, x, atol=1e-5)


def test_spectrum_buffer_only_for_padded_volumes():
    assert spectrum_buffer(np.zeros((8, 8, 8), np.float32)) is None
    assert spectrum_buffer(padded_volume((8, 8, 8))[1:]) is None
    assert spectrum_buffer(padded_volume((8, 8, 8)).astype(np.float64)) is None


@pytest.mark.parametrize("n", [30, 31])
def test_shell_grid_sums_equal_whole_array_sums(n):
    rng = np.random.default_rng(n)
    a = sfft.rfftn(rng.normal(size=(n, n, n)).astype(np.float32)).astype(np.complex64)
    b = sfft.rfftn(rng.normal(size=(n, n, n)).astype(np.float32)).astype(np.complex64)
    grid = ShellGrid((n, n, n))
    expected = shell_sums_rfft(a, b, rfft_shell_index((n, n, n)), n // 2 + 1)
    np.testing.assert_allclose(grid.cross_sums(a, b), expected, rtol=1e-5)
    power = grid.sum_per_shell(lambda i, j: a[i:j].real)
    shells = rfft_shell_index((n, n, n)).reshape(-1)
    direct = np.bincount(shells, weights=a.real.reshape(-1).astype(np.float64))[: n // 2 + 1]
    np.testing.assert_allclose(power, direct, rtol=1e-6, atol=1e-6)


def _whole_box_mask(vol, threshold, extend_px, soft_edge_px):
    """The mask as it was computed before (two whole-box Euclidean distance transforms)."""
    core = vol >= threshold
    if extend_px > 0:
        core = distance_transform_edt(~core) <= extend_px
    if soft_edge_px <= 0:
        return core.astype(np.float32)
    d = distance_transform_edt(~core)
    t = np.clip(d / soft_edge_px, 0.0, 1.0)
    return np.where(core, 1.0, 0.5 + 0.5 * np.cos(np.pi * t)).astype(np.float32)


@pytest.mark.parametrize("n", [48, 49])
@pytest.mark.parametrize("extend, soft", [(0, 0), (3, 0), (0, 5), (2.83, 5.66), (2.5, 6.2), (1, 14)])
def test_auto_mask_equals_whole_box_distances(n, extend, soft):
    v = filter_map(np.random.default_rng(n).normal(size=(n, n, n)).astype(np.float32), pixel_size_a=1, lowpass_a=7)
    v[:9] = 0
    v[:, -6:] = 0
    thr = float(v.mean() + 2.5 * v.std())
    np.testing.assert_allclose(auto_mask(v, threshold=thr, extend_px=extend, soft_edge_px=soft),
                               _whole_box_mask(v, thr, extend, soft), atol=1e-6)  # fmt: skip


@pytest.mark.parametrize("limit", [1.0, 2.83, 5.66, 9.3])
def test_bounded_distance_exact_up_to_its_limit(limit):
    core = np.random.default_rng(3).random((40, 37, 41)) > 0.998
    ref = distance_transform_edt(~core)
    d = _bounded_distance(core, limit)
    near = ref <= limit
    np.testing.assert_allclose(d[near], ref[near], atol=1e-5)
    assert np.all(d[~near] > limit)


@pytest.mark.parametrize("shape", [(40, 40, 40), (41, 41, 41)])
def test_lowpass_slabs_equal_filter_map_at_every_resolution(shape):
    from cryobox.core.fourier import LowpassSlabs

    x = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    for resolution in (2.5, 6.0, 40.0):
        got = LowpassSlabs(lambda i, j: x[i:j], shape, pixel_size_a=1.1, resolution_a=resolution)(0, shape[0])
        ref = filter_map(x, pixel_size_a=1.1, lowpass_a=resolution)
        np.testing.assert_allclose(got, ref, atol=1e-6 * float(np.abs(ref).max()) + 1e-7)


def _pair(n, dtype=np.float32):
    rng = np.random.default_rng(n)
    sig = filter_map(rng.normal(size=(n, n, n)).astype(np.float32), pixel_size_a=1.2, lowpass_a=4.0)
    sig *= soft_spherical_mask(n, radius_px=0.3 * n, soft_edge_px=3)
    h1 = (sig + 0.5 * rng.normal(size=sig.shape)).astype(dtype)
    h2 = (sig + 0.5 * rng.normal(size=sig.shape)).astype(dtype)
    return h1, h2


@pytest.mark.parametrize("n", [40, 41])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_overwrite_input_gives_the_same_numbers(n, dtype):
    h1, h2 = _pair(n, dtype)
    mask = soft_spherical_mask(n, radius_px=0.38 * n, soft_edge_px=4)
    ref = masked_fsc_analysis(h1, h2, pixel_size_a=1.2, mask=mask)
    p1, p2 = padded_volume(h1.shape), padded_volume(h2.shape)
    p1[...], p2[...] = h1, h2
    got = masked_fsc_analysis(p1, p2, pixel_size_a=1.2, mask=mask, overwrite_input=True)
    for name in ("fsc_unmasked", "fsc_masked", "fsc_random_masked", "fsc_corrected"):
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), atol=1e-5, err_msg=name)
    assert not np.array_equal(p1, h1.astype(np.float32))  # the buffers were used
    # without overwrite_input, a padded volume is left alone
    p1[...] = h1
    masked_fsc_analysis(p1, h2, pixel_size_a=1.2, mask=mask)
    np.testing.assert_array_equal(p1, h1.astype(np.float32))


@pytest.mark.parametrize("n", [40, 41])
def test_auto_mask_in_the_analysis_equals_the_separate_mask(n):
    h1, h2 = _pair(n)
    settings = AutoMaskSettings(lowpass_a=6.0, extend_a=1.2, soft_edge_a=3.6)
    m, thr = auto_mask_from_map(0.5 * (h1 + h2), pixel_size_a=1.2, lowpass_a=6.0, extend_a=1.2, soft_edge_a=3.6)
    ref = masked_fsc_analysis(h1, h2, pixel_size_a=1.2, mask=m)
    got = masked_fsc_analysis(h1, h2, pixel_size_a=1.2, auto_mask=settings)
    assert got.auto_mask_threshold == pytest.approx(thr, rel=1e-5)
    np.testing.assert_allclose(got.auto_mask, m, atol=1e-5)
    np.testing.assert_allclose(got.fsc_corrected, ref.fsc_corrected, atol=1e-4)
    with pytest.raises(ValueError, match="not both"):
        masked_fsc_analysis(h1, h2, pixel_size_a=1.2, mask=m, auto_mask=settings)


def _write(path, data, *, voxel=1.5, axes=None):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = voxel
        if axes is not None:
            m.header.mapc, m.header.mapr, m.header.maps = axes


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.float16, np.int8])
def test_read_map_into_equals_read_map(tmp_path, dtype):
    x = np.random.default_rng(0).normal(size=(21, 21, 21)) * (30 if np.dtype(dtype).kind == "i" else 1)
    path = tmp_path / "a.mrc"
    _write(path, x.astype(dtype))
    shape, px = read_map_header(path, what="half map", ndim=3)
    assert shape == (21, 21, 21) and px == pytest.approx(1.5)
    v = padded_volume(shape)
    read_map_into(path, v, what="half map", varying=True)
    np.testing.assert_array_equal(v, read_map(path)[0])


def test_read_map_into_other_axis_order_and_bad_values(tmp_path):
    x = np.random.default_rng(1).normal(size=(12, 12, 12)).astype(np.float32)
    path = tmp_path / "zyx.mrc"
    _write(path, x, axes=(3, 2, 1))
    v = padded_volume((12, 12, 12))
    read_map_into(path, v)
    np.testing.assert_array_equal(v, read_map(path)[0])
    x[3, 4, 5] = np.nan
    _write(tmp_path / "nan.mrc", x)
    with pytest.raises(InputError, match="NaN"):
        read_map_into(tmp_path / "nan.mrc", padded_volume((12, 12, 12)), what="half map")
    _write(tmp_path / "flat.mrc", np.ones((12, 12, 12), np.float32))
    with pytest.raises(InputError, match="constant"):
        read_map_into(tmp_path / "flat.mrc", padded_volume((12, 12, 12)), varying=True)


def test_big_volume_writer_matches_mrcfile(tmp_path, monkeypatch):
    x = padded_volume((30, 30, 30))
    x[...] = np.random.default_rng(4).random((30, 30, 30), dtype=np.float32)
    write_mrc(tmp_path / "plain.mrc", x, pixel_size_a=1.25)
    monkeypatch.setattr(mrc_io, "_BIG_VOLUME_BYTES", 1000)
    write_mrc(tmp_path / "slabs.mrc", x, pixel_size_a=1.25)
    with mrcfile.open(tmp_path / "plain.mrc") as a, mrcfile.open(tmp_path / "slabs.mrc") as b:
        np.testing.assert_array_equal(a.data, b.data)
        for key in ("nx", "ny", "nz", "mode", "mapc", "mapr", "maps", "ispg", "nsymbt", "cella", "origin"):
            assert str(a.header[key]) == str(b.header[key]), key
        for key in ("dmin", "dmax", "dmean", "rms"):
            assert float(b.header[key]) == pytest.approx(float(a.header[key]), rel=1e-5), key
        assert b.voxel_size.x == pytest.approx(1.25)


def test_fsc_refuses_maps_that_do_not_fit_in_memory(tmp_path, monkeypatch):
    import cryobox.jobs.records as records
    from cryobox.jobs.fsc import fsc_memory_bytes, run_fsc

    h1, h2 = _pair(24)
    for name, data in (("h1.mrc", h1), ("h2.mrc", h2)):
        _write(tmp_path / name, data, voxel=1.2)
    need = fsc_memory_bytes((576,) * 3, masked=True)
    assert 3.7 * 2**30 < need < 4.5 * 2**30  # five 576³ buffers and the interpreter: under half of RELION's 8.8 GB
    monkeypatch.setattr(records, "available_memory_bytes", lambda: (40960.0, "this machine"))
    with pytest.raises(InputError, match=r"FSC of two 24 x 24 x 24 half maps .* would need about .* GiB"):
        run_fsc(tmp_path / "h1.mrc", tmp_path / "h2.mrc", auto=True, mask_out=tmp_path / "m.mrc")
    assert not (tmp_path / "m.mrc").exists()


@pytest.mark.parametrize("n", [40, 41])
@pytest.mark.parametrize("resolution", [2.2, 6.0, 15.0])
def test_lowpass_slabs_equal_filter_map_and_know_their_statistics(n, resolution):
    from cryobox.core.fourier import LowpassSlabs

    x = (np.random.default_rng(n).normal(size=(n, n, n)) + 0.3).astype(np.float32)
    ref = filter_map(x, pixel_size_a=1.06, lowpass_a=resolution)
    lp = LowpassSlabs(lambda i, j: x[i:j], x.shape, pixel_size_a=1.06, resolution_a=resolution)
    got = np.concatenate([lp(i, min(n, i + 7)) for i in range(0, n, 7)])
    np.testing.assert_allclose(got, ref, atol=1e-6 * float(np.abs(ref).max()))
    assert lp.mean == pytest.approx(float(ref.astype(np.float64).mean()), abs=1e-6)
    assert lp.mean_square == pytest.approx(float((ref.astype(np.float64) ** 2).mean()), rel=1e-5)


def test_auto_mask_of_half_maps_equals_the_mask_of_their_average():
    from cryobox.core.masks import SlabMap, auto_mask_from_half_maps

    h1, h2 = _pair(41)
    ref, thr_ref = auto_mask_from_map(0.5 * (h1 + h2), pixel_size_a=1.2, lowpass_a=6.0, extend_a=1.2, soft_edge_a=3.6)
    got, thr = auto_mask_from_half_maps(
        h1, h2, pixel_size_a=1.2, settings=AutoMaskSettings(lowpass_a=6.0, extend_a=1.2, soft_edge_a=3.6)
    )
    assert thr == pytest.approx(thr_ref, rel=1e-5)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    # the mask from the whole low-passed map (the way it was built before), for the same threshold
    smooth = filter_map(0.5 * (h1 + h2), pixel_size_a=1.2, lowpass_a=6.0)
    whole = _whole_box_mask(smooth, thr, 1.2 / 1.2, 3.6 / 1.2)
    assert np.mean(np.abs(got - whole) > 1e-4) < 1e-3  # only voxels at the threshold itself may differ
    view = SlabMap(lambda i, j: h1[i:j], h1.shape)
    np.testing.assert_array_equal(view[3:9, 2:5], h1[3:9, 2:5])
    assert view.max() == pytest.approx(float(h1.max()))


def test_fsc_auto_mask_written_only_when_the_fsc_succeeds(tmp_path):
    from cryobox.jobs.fsc import run_fsc

    h1, h2 = _pair(40)
    for name, data in (("h1.mrc", h1), ("h2.mrc", h2)):
        _write(tmp_path / name, data, voxel=1.2)
    job = run_fsc(tmp_path / "h1.mrc", tmp_path / "h2.mrc", auto=True, mask_out=tmp_path / "m.mrc")
    ref, _ = auto_mask_from_map(0.5 * (h1 + h2), pixel_size_a=1.2)
    np.testing.assert_allclose(read_map(tmp_path / "m.mrc")[0], ref, atol=1e-5)
    assert job.mask == str(tmp_path / "m.mrc") and job.result.fsc_corrected is not None
    # nearly noiseless halves: the unmasked FSC never drops below 0.8, the analysis fails: no mask
    rng = np.random.default_rng(5)
    for name in ("q1.mrc", "q2.mrc"):
        _write(tmp_path / name, (h1 + 1e-4 * rng.normal(size=h1.shape)).astype(np.float32), voxel=1.2)
    with pytest.raises(InputError, match="never drops below 0.8"):
        run_fsc(tmp_path / "q1.mrc", tmp_path / "q2.mrc", auto=True, mask_out=tmp_path / "q.mrc")
    assert not (tmp_path / "q.mrc").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]  # no temporary left behind


@pytest.mark.parametrize("kind, expected", [("unmasked", 2), ("masked", 14), ("seed", 8), ("keep", 16)])
def test_transforms_per_analysis_are_as_documented(monkeypatch, kind, expected):
    """docs/commands/fsc.md and core/fsc.py state the 3D transforms per run: 2 unmasked, 14 with a
    mask (8 with one seeded draw), 2 more when the masked spectra are kept (diagnose)."""
    import cryobox.core.fsc as fsc_module
    import cryobox.core.phase_random as phase_module
    import cryobox.core.shells as shells_module

    calls = []
    for module in (fsc_module, phase_module, shells_module):
        for name in ("rfftn_in_place", "irfftn_in_place"):
            if hasattr(module, name):
                real = getattr(module, name)
                monkeypatch.setattr(module, name, lambda *a, _f=real, **k: (calls.append(1), _f(*a, **k))[1])
    h1, h2 = _pair(32)
    mask = None if kind == "unmasked" else soft_spherical_mask(32, radius_px=12, soft_edge_px=3)
    masked_fsc_analysis(
        h1, h2, pixel_size_a=1.2, mask=mask, seed=0 if kind == "seed" else None, keep_spectra=kind == "keep"
    )
    assert len(calls) == expected


def test_judge_refuses_maps_that_do_not_fit_in_memory(tmp_path, monkeypatch):
    import cryobox.jobs.records as records
    from cryobox.jobs.judge import run_judge

    h1, h2 = _pair(24)
    for name, data in (("a1.mrc", h1), ("a2.mrc", h2), ("b1.mrc", h2), ("b2.mrc", h1 + 0.1)):
        _write(tmp_path / name, data, voxel=1.2)
    monkeypatch.setattr(records, "available_memory_bytes", lambda: (40960.0, "this machine"))
    variants = [("a", [f"{tmp_path}/a1.mrc:{tmp_path}/a2.mrc"]), ("b", [f"{tmp_path}/b1.mrc:{tmp_path}/b2.mrc"])]
    with pytest.raises(InputError, match=r"judging runs of up to 24 px .* would need about .* GiB"):
        run_judge(variants, out=tmp_path / "J")
    assert not (tmp_path / "J" / "judge.json").exists()


def test_available_memory_reads_meminfo_and_the_control_group(tmp_path):
    """MemAvailable (free memory plus droppable cache), and a control group's limit (a SLURM job's
    --mem) less its usage beyond droppable cache, whichever is lower; v2 and v1 layouts."""
    from cryobox.jobs.records import _cgroup_available, available_memory_bytes

    got, where = available_memory_bytes()
    assert got is None or (got > 0 and where)
    v2 = tmp_path / "v2"
    (v2 / "slurm" / "job_1").mkdir(parents=True)
    (v2 / "slurm" / "job_1" / "memory.max").write_text("8589934592\n")
    (v2 / "slurm" / "job_1" / "memory.current").write_text("3221225472\n")
    (v2 / "slurm" / "job_1" / "memory.stat").write_text("anon 1\ninactive_file 1073741824\nactive_file 5\n")
    member = tmp_path / "cgroup2"
    member.write_text("0::/slurm/job_1\n")
    assert _cgroup_available(v2, member) == pytest.approx((8 - 3 + 1) * 2**30)
    (v2 / "slurm" / "job_1" / "memory.max").write_text("max\n")
    assert _cgroup_available(v2, member) is None  # no limit: the machine's memory bounds it
    v1 = tmp_path / "v1"
    (v1 / "memory" / "job").mkdir(parents=True)
    (v1 / "memory" / "job" / "memory.limit_in_bytes").write_text(str(4 * 2**30))
    (v1 / "memory" / "job" / "memory.usage_in_bytes").write_text(str(2**30))
    member1 = tmp_path / "cgroup1"
    member1.write_text("4:memory:/job\n1:cpu:/\n")
    assert _cgroup_available(v1, member1) == pytest.approx(3 * 2**30)
    assert _cgroup_available(tmp_path / "none", member1) is None
