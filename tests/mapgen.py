"""Synthetic half maps for FSC tests (pure numpy)."""

import numpy as np
import scipy.fft as sfft

from cryobox.core.fourier import filter_map
from cryobox.core.masks import soft_spherical_mask


def plain_shell_index(n: int) -> np.ndarray:
    """The shell of each rfftn component of an (n, n, n) map, written out plainly and apart from
    the code under test: the radius in Fourier pixels sqrt(kx^2 + ky^2 + kz^2), with k the integer
    frequencies numpy.fft gives, rounded to the nearest integer (RELION's rule: shell = round(|k|))."""
    kz = np.fft.fftfreq(n) * n
    ky = np.fft.fftfreq(n) * n
    kx = np.fft.rfftfreq(n) * n
    radius = np.sqrt(kz[:, None, None] ** 2 + ky[None, :, None] ** 2 + kx[None, None, :] ** 2)
    return np.floor(radius + 0.5).astype(int)


def known_crossing_half_maps(n: int, crossing_shell: int, *, seed: int = 0, dtype=np.float32):
    """Half maps whose FSC is exactly 1 below ``crossing_shell`` (identical Fourier components)
    and near 0 from it on (independent components): RELION's rule must give shell crossing-1."""
    rng = np.random.default_rng(seed)
    shape = (n, n, n)
    common = sfft.rfftn(rng.normal(size=shape))
    other1 = sfft.rfftn(rng.normal(size=shape))
    other2 = sfft.rfftn(rng.normal(size=shape))
    low = plain_shell_index(n) < crossing_shell
    f1 = np.where(low, common, other1)
    f2 = np.where(low, common, other2)
    return sfft.irfftn(f1, s=shape).astype(dtype), sfft.irfftn(f2, s=shape).astype(dtype)


def particle_half_maps(n: int, pixel_size_a: float, *, signal_res_a: float = 6.0, noise: float = 0.6, seed: int = 1):
    """A blobby particle low-passed to ``signal_res_a`` inside a soft sphere plus independent noise
    per half, the way a real pair of half maps looks to an FSC."""
    rng = np.random.default_rng(seed)
    sig = filter_map(rng.normal(size=(n, n, n)).astype(np.float32), pixel_size_a=pixel_size_a, lowpass_a=signal_res_a)
    sig *= soft_spherical_mask(n, radius_px=0.3 * n, soft_edge_px=0.06 * n)
    sig /= sig.std()
    halves = []
    for _ in range(2):
        nz = rng.normal(size=(n, n, n)).astype(np.float32)
        halves.append((sig + noise * nz).astype(np.float32))
    mask = soft_spherical_mask(n, radius_px=0.36 * n, soft_edge_px=0.1 * n)
    return halves[0], halves[1], mask
