"""MRC images and stacks: atomic writes, header reads (permissive, as real files are sloppy)."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np

from cryobox.core.fourier import padded_volume
from cryobox.errors import InputError
from cryobox.io.atomic import atomic_path

__all__ = [
    "write_mrc",
    "write_mrc_data",
    "read_mrc",
    "read_map",
    "read_map_header",
    "read_map_into",
    "read_map_padded",
    "read_mrc_header_shape",
    "check_mrc_file",
    "read_mrc_pixel_size",
    "StackReader",
    "StackWriter",
]


def write_mrc(path: str | os.PathLike, data: np.ndarray, *, pixel_size_a: float, overwrite: bool = True) -> Path:
    """Write an image, stack or volume as MRC (float32 unless float16 is given), atomically.

    ``pixel_size_a`` goes into the header's voxel size; there is no default pixel size.
    """
    if not pixel_size_a > 0:
        raise ValueError(f"pixel size must be positive (Å), got {pixel_size_a}")

    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path}: exists; remove it or allow overwriting.")
    with atomic_path(path) as tmp:
        write_mrc_data(tmp, data, pixel_size_a=pixel_size_a, stack=path.suffix.lower() == ".mrcs")
    return path


def write_mrc_data(tmp: str | os.PathLike, data: np.ndarray, *, pixel_size_a: float, stack: bool = False) -> None:
    """The writer behind ``write_mrc``, to a path the caller has made safe to write
    (``io.atomic.atomic_path``'s temporary file): for a caller that writes a map while it does
    other work, and renames it only when that work has succeeded."""
    import mrcfile

    arr = np.asarray(data)
    if arr.dtype not in (np.float16, np.float32):
        arr = arr.astype(np.float32)
    if arr.ndim == 3 and arr.dtype == np.float32 and arr.nbytes > _BIG_VOLUME_BYTES and not stack:
        _write_big_volume(tmp, arr, pixel_size_a)
        return
    with mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(arr))
        mrc.voxel_size = float(pixel_size_a)
        if arr.ndim == 3 and stack:
            mrc.set_image_stack()
        stamp_header(mrc)


_BIG_VOLUME_BYTES = 256 * 2**20


def _write_big_volume(tmp: Path, arr: np.ndarray, pixel_size_a: float) -> None:
    """``write_mrc`` of a big float32 volume, a slab of sections at a time: no contiguous copy of
    it, and the header's statistics (min, max, mean, rms, as mrcfile sets them) summed in float64
    as the slabs go, instead of mrcfile's four passes over the whole map."""
    import mrcfile

    lo, hi, total, squares = np.inf, -np.inf, 0.0, 0.0
    with mrcfile.new_mmap(tmp, shape=arr.shape, mrc_mode=2, overwrite=True) as mrc:
        for i in range(0, arr.shape[0], 16):
            part = arr[i : i + 16]
            mrc.data[i : i + 16] = part
            lo, hi = min(lo, float(part.min())), max(hi, float(part.max()))
            flat = part.reshape(-1)
            total += float(flat.sum(dtype=np.float64))
            squares += float(np.dot(flat, flat))  # float32 BLAS (blocked sums): ample for a header's rms
        mean = total / arr.size
        mrc.header.dmin, mrc.header.dmax, mrc.header.dmean = lo, hi, mean
        mrc.header.rms = float(np.sqrt(max(0.0, squares / arr.size - mean * mean)))
        mrc.voxel_size = float(pixel_size_a)
        stamp_header(mrc)


def stamp_header(mrc) -> None:
    """Replace mrcfile's default label (which holds the creation time) by a fixed one, so the
    same data give the same bytes."""
    mrc.header.label[:] = b""
    mrc.header.label[0] = b"cryobox"
    mrc.header.nlabl = 1


_MODE_BYTES = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2}


def check_mrc_file(
    path: str | os.PathLike,
    *,
    what: str = "MRC file",
    fix: str = "check the path",
    folder_fix: str = "give the map or stack inside it",
) -> None:
    """One sentence (``InputError``) unless ``path`` is an MRC file this package reads whole: not a
    folder, present, a valid header, a supported mode, and at least the bytes its header needs.
    ``what``, ``fix`` and ``folder_fix`` word the message for a path that is absent or a folder."""
    path = Path(path)
    if path.is_dir():
        article = "an" if what.startswith(("MRC", "a", "e", "i", "o", "u")) else "a"
        raise InputError(f"{path}: is a folder, not {article} {what}; {folder_fix}.")
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: not a regular file (a pipe, socket or device); give the {what} itself.")
    if not path.is_file():
        raise InputError(f"{path}: no such {what}; {fix}.")
    _check_mrc_size(path)


def _check_mrc_size(path: Path) -> None:
    """One sentence for a file that is not MRC (an impossible header) or is cut short: the header's
    size and mode say how many bytes the data need; the file must hold at least that many."""
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if len(head) < 1024:
        raise InputError(f"{path}: {len(head)} bytes, shorter than an MRC header (1024 bytes); the file is cut short.")
    for order in ("<", ">"):
        nx, ny, nz, mode = np.frombuffer(head[:16], dtype=f"{order}i4")
        nsymbt = int(np.frombuffer(head[92:96], dtype=f"{order}i4")[0])
        if mode in _MODE_BYTES and 0 < nx < 2**20 and 0 < ny < 2**20 and 0 < nz < 2**24 and 0 <= nsymbt < 2**31:
            break
    else:
        for order in ("<", ">"):
            nx, ny, nz, mode = np.frombuffer(head[:16], dtype=f"{order}i4")
            nsymbt = int(np.frombuffer(head[92:96], dtype=f"{order}i4")[0])
            if mode in _MODE_BYTES and 0 < nx < 2**20 and 0 < ny < 2**20 and 0 < nz < 2**24 and nsymbt < 0:
                raise InputError(
                    f"{path}: the MRC header gives an extended header of {nsymbt} bytes (NSYMBT, bytes 93-96), which "
                    "cannot be negative; the header is damaged: rewrite the file (relion_image_handler --i IN --o OUT)."
                )
            if 0 < nx < 2**20 and 0 < ny < 2**20 and 0 < nz < 2**24 and 0 <= mode < 256 and head[208:211] == b"MAP":
                raise InputError(
                    f"{path}: MRC data mode {int(mode)} is not one cryobox reads (modes 0, 1, 2, 6 and 12: integers, "
                    "float32, float16); convert it (relion_image_handler --i IN --o OUT writes float32)."
                )
        raise InputError(f"{path}: not an MRC file (its header gives no valid size and data mode); check the file.")
    need = 1024 + nsymbt + int(nx) * int(ny) * int(nz) * _MODE_BYTES[int(mode)]
    have = path.stat().st_size
    if have < need:
        raise InputError(
            f"{path}: holds {have:,} bytes but its header ({nx} x {ny} x {nz}, mode {mode}) needs {need:,}; the file "
            "is "
            "cut short (copy it again)."
        )


def read_mrc(path: str | os.PathLike, *, mmap: bool = False) -> tuple[np.ndarray, float | None]:
    """(data, pixel size in Å or None when the header has none); permissive with a warning.

    The array is read-only (inputs are never modified); copy it to change it. ``mmap``: map the
    file instead of reading it (pages are read when touched: cutting boxes from a micrograph then
    costs no copy of the whole image).
    """
    import mrcfile

    path = Path(path)
    check_mrc_file(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with mrcfile.mmap(path, mode="r", permissive=True) if mmap else mrcfile.open(path, permissive=True) as mrc:
                if mrc.data is None:
                    raise ValueError("no data")
                data = mrc.data  # read-only and ours after close: no second copy of a big map
                vs = float(mrc.voxel_size.x)
                data = _standard_axes(path, mrc, data)
        for w in caught:
            if "larger than expected" in str(w.message):
                # the header describes less data than the file holds: which voxels are which is
                # unknown, so the file cannot be used as it is
                raise InputError(
                    f"{path}: the header says {' x '.join(map(str, data.shape[::-1]))} voxels but the file holds more "
                    f"data ({w.message}); the header is wrong: rewrite the file (e.g. relion_image_handler --i IN "
                    "--o OUT)."
                )
            warnings.warn(f"{path}: {w.message}", stacklevel=2)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: not a readable MRC file ({exc}); check the file.") from None
    return data, (vs if vs > 0 else None)


def _standard_axes(path: Path, mrc, data: np.ndarray) -> np.ndarray:
    """The data as (z, y, x) with square (cubic) voxels, whatever the header's axis order; one
    sentence for complex data, an axis order that is no permutation, or voxels that are not square."""
    h = mrc.header
    if int(h.mode) in (3, 4):
        raise InputError(
            f"{path}: complex MRC data (mode {int(h.mode)}: a Fourier transform); cryobox reads real-space maps and "
            "images: give the map itself, not its transform."
        )
    axes = (int(h.mapc), int(h.mapr), int(h.maps))
    if axes != (1, 2, 3):
        if sorted(axes) != [1, 2, 3]:
            if axes == (0, 0, 0):  # an old header that never set them: the standard order
                axes = (1, 2, 3)
            else:
                raise InputError(
                    f"{path}: the MRC header's axis order MAPC/MAPR/MAPS is {axes}, not a permutation of 1, 2, 3; the "
                    "header is damaged: rewrite the file."
                )
        if axes != (1, 2, 3):
            # the array is (sections, rows, columns) = (axis maps, axis mapr, axis mapc): bring z, y, x in front
            stored = [axes[2], axes[1], axes[0]]
            data = np.transpose(data, [stored.index(a) for a in (3, 2, 1)])
    vx, vy, vz = (float(v) for v in (mrc.voxel_size.x, mrc.voxel_size.y, mrc.voxel_size.z))
    cube = data.ndim == 3 and data.shape[0] == data.shape[1] == data.shape[2] and int(h.ispg) != 0
    sizes = (vx, vy, vz) if cube else (vx, vy)
    if min(sizes) > 0 and max(sizes) > 1.001 * min(sizes):
        raise InputError(
            f"{path}: voxels of {' x '.join(f'{v:g}' for v in sizes)} Å (x, y{', z' if cube else ''}); cryobox needs "
            "square pixels and cubic voxels: resample the map to one pixel size first."
        )
    return data


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


class StackWriter:
    """Write a particle stack (k, N, N) batch by batch, atomically, without holding it in memory.

    ``with StackWriter(path, k, N, pixel_size_a=p) as out: out.write(batch)`` for batches that add
    up to k images. mrcfile writes the header; the images go in with plain sequential writes
    (cheaper than filling a memory map page by page), and the header's min, max, mean and RMS are
    gathered as they pass (per-image sums as one BLAS matrix-vector product, added in float64), so
    there is no second pass over the stack. ``float16`` writes mode 12.
    """

    def __init__(
        self, path: str | os.PathLike, n_images: int, box_px: int, *, pixel_size_a: float, float16: bool = False
    ):
        if not pixel_size_a > 0:
            raise ValueError(f"pixel size must be positive (Å), got {pixel_size_a}")
        self.path, self.n, self.box = Path(path), int(n_images), int(box_px)
        self.pixel_size_a = float(pixel_size_a)
        self.dtype = np.float16 if float16 else np.float32
        self.written = 0
        self._lo, self._hi, self._sum, self._sum_sq = np.inf, -np.inf, 0.0, 0.0
        self._ones = np.ones(self.box * self.box, dtype=np.float32)

    def __enter__(self) -> StackWriter:
        import mrcfile

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        try:
            mode = 12 if self.dtype == np.float16 else 2
            self._mrc = mrcfile.new_mmap(tmp, shape=(self.n, self.box, self.box), mrc_mode=mode, overwrite=True)
            self._raw = open(tmp, "r+b")
            self._raw.seek(self._mrc.header.nbytes + self._mrc.extended_header.nbytes)
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        return self

    def write(self, batch: np.ndarray) -> None:
        """Append images (m, N, N); converted to the stack's dtype."""
        part = np.ascontiguousarray(batch, dtype=self.dtype)
        if part.shape[1:] != (self.box, self.box) or self.written + len(part) > self.n:
            raise ValueError(f"{self.path}: a batch of {part.shape} does not fit a stack of {self.n} x {self.box}^2")
        part.tofile(self._raw)
        self.written += len(part)
        if part.size:
            self._lo, self._hi = min(self._lo, float(part.min())), max(self._hi, float(part.max()))
            p = part.reshape(len(part), -1)
            p = p if self.dtype == np.float32 else p.astype(np.float32)
            self._sum += float((p @ self._ones).sum(dtype=np.float64))
            self._sum_sq += float(np.dot(p.ravel(), p.ravel()))

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            self._raw.flush()
            self._raw.close()
            if exc_type is None:
                if self.written != self.n:
                    raise ValueError(f"{self.path}: {self.written} of {self.n} images were written")
                mrc = self._mrc
                mrc.set_image_stack()
                mrc.voxel_size = self.pixel_size_a
                stamp_header(mrc)
                count = max(1, self.n * self.box * self.box)
                mean = self._sum / count
                mrc.header.dmin, mrc.header.dmax = (self._lo, self._hi) if self.n else (0.0, 0.0)
                mrc.header.dmean = mean
                mrc.header.rms = float(np.sqrt(max(0.0, self._sum_sq / count - mean * mean)))
            self._mrc.close()
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        return bool(self._atomic.__exit__(exc_type, exc, tb))


def check_mask(mask: np.ndarray, path) -> None:
    """A mask file's values: finite, in [0, 1], and not all zero (InputError naming the file)."""
    if not np.isfinite(mask).all():
        raise InputError(f"{path}: the mask holds NaN or infinite values; make it again (relion_mask_create).")
    if mask.min() < -1e-6 or mask.max() > 1 + 1e-6:
        raise InputError(
            f"{path}: mask values run {float(mask.min()):.3g}..{float(mask.max()):.3g}; a mask holds values in [0, 1]."
        )
    if not mask.max() > 0:
        raise InputError(f"{path}: the mask is zero everywhere; it would hide the whole map: give the right mask file.")


def _check_map_shape(path, shape: tuple[int, ...], what: str, ndim: int | None) -> None:
    if len(shape) not in (2, 3):
        raise InputError(f"{path}: the {what} has {len(shape)} dimensions; give a 3D map (or a 2D image).")
    if ndim is not None and len(shape) != ndim:
        raise InputError(f"{path}: the {what} is a {len(shape)}D image {shape}; give a {ndim}D map (an MRC volume).")
    if any(s != shape[-1] for s in shape):
        raise InputError(f"{path}: the {what} is {shape}, not a cubic box; cryobox compares cubic maps.")


def _map_pixel_size(path, header_pixel_a: float | None, pixel_size_a: float | None) -> float:
    if pixel_size_a is not None and not (np.isfinite(pixel_size_a) and pixel_size_a > 0):
        raise InputError(f"`pixel_size_a` must be a positive number of Å/px, got {pixel_size_a}.")
    pixel_a = pixel_size_a if pixel_size_a is not None else header_pixel_a
    if pixel_a is None or not pixel_a > 0:
        raise InputError(f"{path}: no pixel size in the MRC header; give `pixel_size_a`.")
    return float(pixel_a)


def _check_values(path, lo: float, hi: float, finite: bool, what: str, varying: bool) -> None:
    if not finite:
        raise InputError(f"{path}: the {what} holds NaN or infinite values; check how it was made.")
    if varying and lo == hi:
        raise InputError(
            f"{path}: the {what} is constant ({hi:g} everywhere); there is nothing to correlate: "
            "check that it is the right file."
        )


def read_map(
    path: Path, *, pixel_size_a: float | None = None, what: str = "map", ndim: int | None = None, varying: bool = False
) -> tuple[np.ndarray, float]:
    """A map and its pixel size (header, or the override); InputError when neither is known, when it
    is not cubic, holds NaN or inf, is not ``ndim``-dimensional, or (``varying``) is constant."""
    data, header_pixel_a = read_mrc(path)
    _check_map_shape(path, data.shape, what, ndim)
    pixel_a = _map_pixel_size(path, header_pixel_a, pixel_size_a)
    _check_values(path, float(data.min()), float(data.max()), bool(np.isfinite(data).all()), what, varying)
    return data.astype(np.float32, copy=False), pixel_a


def read_map_header(
    path: Path, *, pixel_size_a: float | None = None, what: str = "map", ndim: int | None = None
) -> tuple[tuple[int, ...], float]:
    """The (z, y, x) shape and pixel size of a map, from its header alone (no voxel is read), with
    ``read_map``'s checks of the shape and the pixel size."""
    data, header_pixel_a = read_mrc(path, mmap=True)
    shape = tuple(int(n) for n in data.shape)
    del data
    _check_map_shape(path, shape, what, ndim)
    return shape, _map_pixel_size(path, header_pixel_a, pixel_size_a)


def read_map_padded(
    path: Path, *, pixel_size_a: float | None = None, what: str = "map", ndim: int | None = None, varying: bool = False
) -> tuple[np.ndarray, float]:
    """``read_map``, the map read (``read_map_into``) into a ``core.fourier.padded_volume``: the
    buffer of its own Fourier transform, which the FSC then transforms in place."""

    shape, pixel_a = read_map_header(path, pixel_size_a=pixel_size_a, what=what, ndim=ndim)
    volume = padded_volume(shape)
    read_map_into(path, volume, what=what, varying=varying)
    return volume, pixel_a


def read_map_into(path: Path, out: np.ndarray, *, what: str = "map", varying: bool = False) -> None:
    """Read a map's voxels into ``out`` (float32, its shape from ``read_map_header``; a
    ``core.fourier.padded_volume`` for an in-place transform), a slab of sections at a time: the
    process holds no second copy of the map. Values are checked as ``read_map`` checks them."""
    import mrcfile

    with mrcfile.open(path, header_only=True, permissive=True) as mrc:
        h = mrc.header
        standard = (int(h.mapc), int(h.mapr), int(h.maps)) in ((1, 2, 3), (0, 0, 0))
        dtype = mrcfile.utils.data_dtype_from_header(h)
        offset = 1024 + int(h.nsymbt)
    lo, hi, finite = np.inf, -np.inf, True
    if not standard or out.ndim != 3:  # another axis order (rare): through the memory map
        data, _ = read_mrc(path, mmap=True)
        if data.shape != out.shape:
            raise InputError(f"{path}: the {what} is {data.shape}, expected {out.shape}.")
        sections = ((i, data[i : i + 16]) for i in range(0, out.shape[0], 16))
    else:
        plane = out.shape[1] * out.shape[2]
        fh = open(path, "rb")  # noqa: SIM115 - closed below, after the generator is used up
        fh.seek(offset)

        def reader():
            for i in range(0, out.shape[0], 16):
                k = min(16, out.shape[0] - i)
                block = np.fromfile(fh, dtype=dtype, count=k * plane)
                if block.size != k * plane:
                    raise InputError(f"{path}: the file ends inside the {what}'s data; copy it again.")
                yield i, block.reshape(k, out.shape[1], out.shape[2])

        sections = reader()
    try:
        for i, block in sections:
            part = out[i : i + block.shape[0]]
            part[...] = block
            finite = finite and bool(np.isfinite(part).all())
            lo, hi = min(lo, float(part.min())), max(hi, float(part.max()))
    finally:
        if standard and out.ndim == 3:
            fh.close()
    _check_values(path, lo, hi, finite, what, varying)
