"""The public API for maps: FSC, resampling, windowing, reconstruction and directional
resolution (``cryobox.masked_fsc`` ...), each a thin, stable layer with units for every parameter."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cryobox.api_results import DirectionalResolution
from cryobox.core.diagnose import directional_resolution as _directional
from cryobox.core.fourier import fourier_rescale as _rescale
from cryobox.core.fourier import window as _window
from cryobox.core.fsc import masked_fsc_analysis
from cryobox.core.reconstruct import Backprojector

__all__ = ["masked_fsc", "fourier_rescale", "window", "reconstruct", "directional_resolution"]


def masked_fsc(
    half1: ArrayLike,
    half2: ArrayLike,
    *,
    pixel_size_a: float,
    mask: ArrayLike | None = None,
    randomise_at_a: float | None = None,
    seed: int | None = None,
):
    """Compute the FSC of two half maps as ``relion_postprocess`` does.

    Unmasked, masked, phase-randomised and corrected (Chen et al. 2013, Ultramicroscopy 135:24).

    Parameters
    ----------
    half1, half2 : array_like
        Half maps (N, N, N), one box, centre at N//2.
    pixel_size_a : float
        Voxel size (Å/px).
    mask : array_like, optional
        Soft mask (N, N, N) with values in [0, 1]; without it only the unmasked FSC is computed.
    randomise_at_a : float, optional
        Resolution (Å) from which phases are randomised; default: where the unmasked FSC first
        drops below 0.8 (RELION's rule).
    seed : int, optional
        None (default): the phase-randomised masked FSC is its expectation over all phase draws,
        computed exactly (no randomness). A number: one random draw, as relion_postprocess makes
        it, seeded from the maps' content and this number.

    Returns
    -------
    cryobox.core.fsc.FscResult
        Curves on shells 0..N//2 (``frequency_inv_a`` in 1/Å); ``resolution(0.143)`` gives the
        resolution (Å) by RELION's rule (last shell before the curve first drops below the
        threshold), the interpolated crossing and ``limited_by_nyquist``.

    Examples
    --------
    >>> import numpy as np, cryobox
    >>> rng = np.random.default_rng(0)
    >>> signal = rng.standard_normal((32, 32, 32)).astype(np.float32)
    >>> r = cryobox.masked_fsc(signal + 0.1 * rng.standard_normal(signal.shape), signal, pixel_size_a=2.0)
    >>> r.resolution(0.143)["limited_by_nyquist"]
    True
    """

    return masked_fsc_analysis(
        np.asarray(half1),
        np.asarray(half2),
        pixel_size_a=pixel_size_a,
        mask=None if mask is None else np.asarray(mask),
        randomise_at_a=randomise_at_a,
        seed=seed,
    )


def fourier_rescale(array: ArrayLike, new_box_px: int, *, pixel_size_a: float) -> tuple[NDArray, float]:
    """Fourier crop (downsample) or pad (upsample) a square image or cubic map from N to n px.

    Parameters
    ----------
    array : array_like
        An image (N, N) or a map (N, N, N), centre at N//2.
    new_box_px : int
        The new size n (px).
    pixel_size_a : float
        The input's pixel size p (Å/px).

    Returns
    -------
    rescaled : numpy.ndarray
        (n, n) or (n, n, n) float32; real-space values kept (mean, and the value at the centre).
    pixel_size_a : float
        The pixel size reached, p N / n (Å/px).

    Examples
    --------
    >>> import numpy as np, cryobox
    >>> small, px = cryobox.fourier_rescale(np.ones((64, 64, 64), np.float32), 48, pixel_size_a=1.5)
    >>> small.shape, px
    ((48, 48, 48), 2.0)
    """

    return _rescale(np.asarray(array), int(new_box_px), pixel_size_a=pixel_size_a)


def window(array: ArrayLike, box_px: int, *, ndim: int | None = None) -> NDArray:
    """Centred crop or zero-pad of an image, a stack of images or a map to ``box_px``.

    Pixel N//2 of the input lands on n//2 of the output (RELION's windowing), for even and odd
    sizes; the pixel size does not change.

    Parameters
    ----------
    array : array_like
        (N, N), (k, N, N) or (N, N, N).
    box_px : int
        The new size n (px).
    ndim : {2, 3}, optional
        The number of trailing axes to window; default 3 for a 3D array, else 2. Give 2 for a
        stack of images.

    Returns
    -------
    numpy.ndarray
        The windowed array (same dtype).

    Examples
    --------
    >>> import numpy as np, cryobox
    >>> float(cryobox.window(np.arange(25.0).reshape(5, 5), 3)[1, 1])  # the centre stays the centre
    12.0
    """

    return _window(np.asarray(array), int(box_px), ndim=ndim)


def reconstruct(
    images: ArrayLike,
    angles_deg: ArrayLike,
    *,
    pixel_size_a: float,
    shifts_a: ArrayLike | None = None,
    ctf_rfft: ArrayLike | None = None,
    premultiplied: bool = False,
    padding: int = 2,
) -> NDArray:
    """Reconstruct a map from particle images and their poses (sum CTF·X / sum CTF²).

    Images that already carry the CTF (``premultiplied``) add X and the same sum CTF², so plain
    and premultiplied stacks of the same particles give the same estimate.

    Parameters
    ----------
    images : array_like
        (m, N, N) particle images, centre at N//2.
    angles_deg : array_like
        (m, 3) RELION Euler angles rot, tilt, psi (degrees).
    pixel_size_a : float
        Pixel size (Å/px), to convert ``shifts_a``.
    shifts_a : array_like, optional
        (m, 2) RELION origin offsets rlnOriginXAngst / YAngst (Å).
    ctf_rfft : array_like, optional
        The CTF on the rfft2 grid, (N, N//2 + 1) shared or (m, N, N//2 + 1) per image (see
        ``ctf_on_box(..., layout="rfft")``); None inserts without CTF weighting.
    premultiplied : bool, optional
        The images already carry the CTF once (rlnCtfDataAreCtfPremultiplied).
    padding : int, optional
        Oversampling of the 3D transform.

    Returns
    -------
    numpy.ndarray
        (N, N, N) float32 map, centre at N//2.

    Examples
    --------
    >>> import numpy as np, cryobox
    >>> angles = [[0, 0, 0], [0, 90, 0], [90, 90, 0]]
    >>> m = cryobox.reconstruct(np.ones((3, 16, 16), np.float32), angles, pixel_size_a=2.0)
    >>> m.shape
    (16, 16, 16)
    """

    imgs = np.asarray(images)
    bp = Backprojector(int(imgs.shape[-1]), padding=padding)
    offsets = None if shifts_a is None else np.asarray(shifts_a, dtype=np.float64) / float(pixel_size_a)
    bp.insert(imgs, angles_deg, offsets_px=offsets, ctf_rfft=ctf_rfft, premultiplied=premultiplied)
    return bp.reconstruct()


def directional_resolution(
    half1: ArrayLike,
    half2: ArrayLike,
    *,
    pixel_size_a: float,
    mask: ArrayLike | None = None,
    n_directions: int = 500,
    half_angle_deg: float = 20.0,
) -> DirectionalResolution:
    """Resolution in every direction: conical FSCs and cryoSPARC's cFAR (``cryobox diagnose``).

    Parameters
    ----------
    half1, half2 : array_like
        Half maps (N, N, N), one box.
    pixel_size_a : float
        Voxel size (Å/px).
    mask : array_like, optional
        Soft mask (N, N, N) multiplied into both halves first.
    n_directions : int
        Cone axes spread evenly over a hemisphere (a cone and its opposite are one).
    half_angle_deg : float
        The cones' half-angle (degrees).

    Returns
    -------
    DirectionalResolution
        ``directions`` (n, 3) unit axes, ``resolution_a`` (n; Å at FSC 0.143, ``limited_by_nyquist``
        where a cone never falls below it), ``curves`` (n, N//2 + 1) against ``frequency_inv_a``
        (1/Å), ``cfar`` (smallest over largest area under the cone curves; below 0.5 cryoSPARC
        calls a map anisotropic) and ``cfar_min_over_mean``.

    See Also
    --------
    cryobox.core.diagnose.directional_resolution

    Examples
    --------
    >>> import numpy as np, cryobox
    >>> rng = np.random.default_rng(0)
    >>> s = rng.standard_normal((32, 32, 32)).astype(np.float32)
    >>> d = cryobox.directional_resolution(s + rng.standard_normal(s.shape), s, pixel_size_a=2.0, n_directions=100)
    >>> d.resolution_a.shape, d.cfar > 0.8
    ((100,), True)
    """

    d = _directional(half1, half2, pixel_size_a, mask=mask, n_directions=n_directions, half_angle_deg=half_angle_deg)
    return DirectionalResolution(**{k: d[k] for k in DirectionalResolution.__dataclass_fields__})
