"""The training cache on disk (format 3): one folder per scan, chunked compressed arrays a patch reads fast.

Layout of ``CACHE/<spec key>/<split>/<scan>/`` (``rexground.train.data.spec_cache_key``)::

    meta.json          format 3, name, split, texts, categories, native shape/spacing, crop, the CT encoding
                       and the anatomy codec (bit layout), preparation timings; written last
    ct.b2nd            (Z, Y, X) int16 HU clipped to the intensity window (data.CtEncoding)
    anatomy.b2nd       (W, Z, Y, X) uint8 anatomy words (anatomy_codec; W = 1 for configs/real.toml)
    labels.b2nd        (F, Z, Y, X) uint8 0/1 finding targets
    ignore.b2nd        (F, Z, Y, X) uint8 0/1 partial-label ignore masks (only when a finding has one)
    fg.npz             foreground voxel coordinates per finding (f0, f1, ...), for centred patches
    native_labels.npz  (F, z, y, x) entity labels on the whole native grid (validation/test scans only)

Every ``.b2nd`` file is a blosc2 NDArray (the container nnU-Net v2 uses): 64^3 chunks, 16 x 32 x 32 blocks,
zstd level 3, byte shuffle for int16 and bit shuffle for uint8, one thread (DataLoader workers parallelise).
Chosen by measurement (``rexground bench cache --data DIR``: a ``synth --size real`` scan, 251 x 270 x 357 at
1.5 x 1 x 1 mm; 2-core shared machine, CPU time per random 128 x 160 x 160 patch, one thread)::

    CT storage                      MB    build s   patch ms   MB read/patch
    int16 blosc2 zstd3 shuffle     19.1     0.45      10.9        5.6
    int16 blosc2 zstd5 shuffle     19.0     1.02       9.2        5.6
    int16 blosc2 lz4 shuffle       25.9     0.09       5.7        7.4
    float16 blosc2 zstd3 shuffle   20.5     0.75      13.3        5.9
    int16 zarr v3 blosc-zstd3      20.3     0.47      41.6        7.2
    int16 npz (deflate)            24.4     3.41     314.4       24.5 (whole array per patch)
    int16 .npy uncompressed        46.1     0.00       1.1        (memory-mapped)

int16 HU is 7% smaller than float16 network values here and 20% on four real CTs (6.8-7.8 bits per voxel
against 8.5), zarr reads a patch four times slower, npz has no random access. The anatomy word (0.06 MB) and the
labels (a few kB) are nearly free once compressed.

The folder is written under a temporary name and renamed when complete, so a killed preparation leaves
no half case behind. Old caches (format 2: ``image.npy``, ``labels.npy``) are refused with the command that
rebuilds them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np

from rexground.errors import InputFileError
from rexground.train.anatomy_codec import AnatomyCodec
from rexground.train.data import CtEncoding, PreparedCase

CACHE_FORMAT = 3
LEGACY_FILES = ("image.npy", "labels.npy")  # format 2, uncompressed float16 / uint8 volumes
CHUNKS_3D = (64, 64, 64)
BLOCKS_3D = (16, 32, 32)
ZSTD_LEVEL = 3
REBUILD_HINT = "rebuild it with `rexground prepare --data DATA --config CONFIG --out CACHE` (or delete it)"


class CacheFormatError(InputFileError):
    """A cache folder written by another format version of rexground."""


def _blosc2():
    try:
        import blosc2
    except ImportError as exc:  # the core install has no blosc2: it is a training dependency
        raise ImportError(
            "the training cache needs blosc2, a training dependency: pip install 'rexground[train]'"
        ) from exc
    return blosc2


class ChunkedVolume:
    """A blosc2 array file opened on first use in each process (a DataLoader worker forked from the main
    process opens its own handle rather than sharing one file position with its siblings)."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype):
        self.path, self.shape, self.dtype = Path(path), tuple(shape), np.dtype(dtype)
        self._handle = None
        self._pid = -1

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _array(self):
        if self._handle is None or self._pid != os.getpid():
            self._handle = _blosc2().open(str(self.path), mode="r", dparams={"nthreads": 1})
            self._pid = os.getpid()
        return self._handle

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1 :]
        return np.asarray(self._array()[key])

    def __array__(self, dtype=None, copy=None):
        out = self[...]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __getstate__(self):  # handles do not travel to other processes
        return {"path": self.path, "shape": self.shape, "dtype": self.dtype}

    def __setstate__(self, state):
        self.__init__(state["path"], state["shape"], state["dtype"])


def _write_array(path: Path, array: np.ndarray) -> None:
    blosc2 = _blosc2()
    array = np.ascontiguousarray(array)
    lead = array.ndim - 3
    chunks = (1,) * lead + tuple(min(c, n) for c, n in zip(CHUNKS_3D, array.shape[lead:], strict=True))
    blocks = (1,) * lead + tuple(min(b, c) for b, c in zip(BLOCKS_3D, chunks[lead:], strict=True))
    shuffle = blosc2.Filter.BITSHUFFLE if array.dtype.itemsize == 1 else blosc2.Filter.SHUFFLE
    cparams = {"codec": blosc2.Codec.ZSTD, "clevel": ZSTD_LEVEL, "filters": [shuffle], "nthreads": 1}
    blosc2.asarray(array, urlpath=str(path), mode="w", chunks=chunks, blocks=blocks, cparams=cparams)


def _meta(case: PreparedCase) -> dict:
    return {
        "format": CACHE_FORMAT,
        "name": case.name,
        "split": case.split,
        "texts": case.texts,
        "categories": case.categories,
        "shape": list(case.shape),
        "native_shape": list(case.native_shape),
        "native_spacing": list(case.native_spacing),
        "crop": [list(c) for c in case.crop] if case.crop is not None else None,
        "ct": case.ct_encoding.to_json(),
        "anatomy": case.anatomy_codec.to_json() if case.anatomy_codec is not None else None,
        "n_findings": case.n_findings,
        "ignore": case.ignore is not None,
        "extra": case.extra,
    }


def write_case(case: PreparedCase, folder: str | Path) -> Path:
    """Write ``case`` as a format-3 folder; atomic (built under a temporary name, renamed when complete)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f"{folder.name}.tmp*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = folder.with_name(f"{folder.name}.tmp-{socket.gethostname()}-{os.getpid()}")
    tmp.mkdir()
    try:
        _write_array(tmp / "ct.b2nd", np.asarray(case.ct))
        if case.anatomy is not None:
            _write_array(tmp / "anatomy.b2nd", np.asarray(case.anatomy))
        _write_array(tmp / "labels.b2nd", np.asarray(case.labels))
        if case.ignore is not None:
            _write_array(tmp / "ignore.b2nd", np.asarray(case.ignore))
        np.savez(tmp / "fg.npz", **{f"f{f}": np.asarray(c, np.int32) for f, c in enumerate(case.fg_coords)})
        if case.native_labels is not None:  # full-size masks compress ~100x; read once per validation
            np.savez_compressed(tmp / "native_labels.npz", labels=case.native_labels)
        (tmp / "meta.json").write_text(json.dumps(_meta(case), indent=1))  # last: marks the folder complete
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def cache_status(folder: str | Path) -> str:
    """ "ok" (a complete current-format case), "missing", "old" (another format version) or "broken"."""
    folder = Path(folder)
    meta = folder / "meta.json"
    if not meta.is_file():
        return "old" if any((folder / f).is_file() for f in LEGACY_FILES) else "missing"
    try:
        fmt = json.loads(meta.read_text()).get("format")
    except (OSError, json.JSONDecodeError):
        return "broken"
    if fmt != CACHE_FORMAT:
        return "old"
    return "ok" if (folder / "ct.b2nd").is_file() and (folder / "labels.b2nd").is_file() else "broken"


def format_error(folder: Path, fmt) -> CacheFormatError:
    return CacheFormatError(
        folder,
        f"is a training cache of format {fmt} (this rexground reads format {CACHE_FORMAT}: compressed "
        f"chunked arrays); {REBUILD_HINT}",
    )


def read_case(folder: str | Path) -> PreparedCase:
    """A cached case whose volumes are opened lazily (:class:`ChunkedVolume`)."""
    folder = Path(folder)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        if any((folder / f).is_file() for f in LEGACY_FILES):
            raise format_error(folder, 2)
        raise InputFileError(folder, "holds no prepared case (no meta.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise InputFileError(meta_path, f"is not valid JSON: {exc}") from exc
    if meta.get("format") != CACHE_FORMAT:
        raise format_error(folder, meta.get("format"))
    shape = tuple(meta["shape"])
    n = int(meta["n_findings"])
    ct_encoding = CtEncoding.from_json(meta["ct"])
    codec = AnatomyCodec.from_json(meta["anatomy"]) if meta.get("anatomy") else None
    with np.load(folder / "fg.npz") as npz:
        fg = [npz[f"f{f}"] for f in range(n)]
    return PreparedCase(
        name=meta["name"],
        split=meta["split"],
        ct=ChunkedVolume(folder / "ct.b2nd", shape, ct_encoding.dtype),
        ct_encoding=ct_encoding,
        anatomy=ChunkedVolume(folder / "anatomy.b2nd", (codec.n_words, *shape), np.uint8) if codec else None,
        anatomy_codec=codec,
        labels=ChunkedVolume(folder / "labels.b2nd", (n, *shape), np.uint8),
        ignore=ChunkedVolume(folder / "ignore.b2nd", (n, *shape), np.uint8) if meta.get("ignore") else None,
        texts=list(meta["texts"]),
        categories=list(meta["categories"]),
        fg_coords=fg,
        native_shape=tuple(meta["native_shape"]),
        native_spacing=tuple(meta["native_spacing"]),
        native_labels_file=folder / "native_labels.npz" if (folder / "native_labels.npz").exists() else None,
        crop=tuple(tuple(c) for c in meta["crop"]) if meta.get("crop") else None,
        extra=meta.get("extra", {}),
    )


def folder_bytes(folder: str | Path) -> int:
    """Bytes on disk of one cached case (what the preparation summary reports per scan)."""
    return sum(f.stat().st_size for f in Path(folder).iterdir() if f.is_file())
