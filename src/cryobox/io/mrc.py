"""MRC images and stacks: atomic writes, header reads (permissive, as real files are sloppy)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from cryobox.errors import InputError
from cryobox.io.atomic import atomic_path

__all__ = ["write_mrc", "read_mrc", "read_mrc_header_shape", "read_mrc_pixel_size", "StackReader"]


def write_mrc(path: str | os.PathLike, data: np.ndarray, *, pixel_size_a: float, overwrite: bool = True) -> Path:
    """Write an image, stack or volume as MRC (float32 unless float16 is given), atomically.

    ``pixel_size_a`` goes into the header's voxel size; there is no default pixel size.
    """
    if not pixel_size_a > 0:
        raise ValueError(f"pixel size must be positive (Å), got {pixel_size_a}")
    import mrcfile

    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path}: exists; remove it or allow overwriting.")
    arr = np.asarray(data)
    if arr.dtype not in (np.float16, np.float32):
        arr = arr.astype(np.float32)
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(arr))
            mrc.voxel_size = float(pixel_size_a)
            if arr.ndim == 3 and path.suffix.lower() == ".mrcs":
                mrc.set_image_stack()
            stamp_header(mrc)
    return path


def stamp_header(mrc) -> None:
    """Replace mrcfile's default label (which holds the creation time) by a fixed one, so the
    same data give the same bytes."""
    mrc.header.label[:] = b""
    mrc.header.label[0] = b"cryobox"
    mrc.header.nlabl = 1


def read_mrc(path: str | os.PathLike, *, mmap: bool = False) -> tuple[np.ndarray, float | None]:
    """(data, pixel size in Å or None when the header has none); permissive with a warning.

    The array is read-only (inputs are never modified); copy it to change it. ``mmap``: map the
    file instead of reading it (pages are read when touched: cutting boxes from a micrograph then
    costs no copy of the whole image).
    """
    import mrcfile

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such MRC file; check the path.")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with mrcfile.mmap(path, mode="r", permissive=True) if mmap else mrcfile.open(path, permissive=True) as mrc:
                if mrc.data is None:
                    raise ValueError("no data")
                data = mrc.data  # read-only and ours after close: no second copy of a big map
                vs = float(mrc.voxel_size.x)
        for w in caught:
            warnings.warn(f"{path}: {w.message}", stacklevel=2)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: not a readable MRC file ({exc}); check the file.") from None
    return data, (vs if vs > 0 else None)


def read_mrc_header_shape(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) in px from an MRC header, or None when the file is absent or unreadable."""
    import mrcfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, permissive=True, header_only=True) as mrc:
                return int(mrc.header.nx), int(mrc.header.ny)
    except (OSError, ValueError):
        return None


def read_mrc_pixel_size(path: str | os.PathLike) -> float | None:
    """Pixel size (Å) from an MRC header, or None when absent, zero or unreadable."""
    import mrcfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, permissive=True, header_only=True) as mrc:
                v = float(mrc.voxel_size.x)
    except (OSError, ValueError):
        return None
    return v if v > 0 else None


class StackReader:
    """Read chosen images of an MRC stack with plain file reads (no memory map), so memory stays
    at the size of one batch however large the stack is."""

    def __init__(self, path: str | os.PathLike):
        import mrcfile
        from mrcfile.utils import data_dtype_from_header

        self.path = Path(path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with mrcfile.open(self.path, permissive=True, header_only=True) as mrc:
                    h = mrc.header
                    self.nx, self.ny, self.nz = int(h.nx), int(h.ny), int(h.nz)
                    self.dtype = data_dtype_from_header(h)
                    self.offset = 1024 + int(h.nsymbt)
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.path}: not a readable MRC stack ({exc}).") from None
        self.image_bytes = self.nx * self.ny * self.dtype.itemsize
        expected = self.offset + self.nz * self.image_bytes
        if self.path.stat().st_size < expected:
            raise InputError(
                f"{self.path}: truncated ({self.path.stat().st_size} bytes, the header promises {expected})."
            )

    def read(self, indices) -> np.ndarray:
        """Images at 0-based ``indices`` as float32 (n, ny, nx)."""
        idx = np.asarray(indices, dtype=np.int64)
        out = np.empty((idx.size, self.ny, self.nx), dtype=np.float32)
        with open(self.path, "rb") as fh:
            for k, i in enumerate(idx):
                fh.seek(self.offset + int(i) * self.image_bytes)
                out[k] = np.fromfile(fh, dtype=self.dtype, count=self.nx * self.ny).reshape(self.ny, self.nx)
        return out
