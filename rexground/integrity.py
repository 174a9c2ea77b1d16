"""Integrity of image files before their voxels are believed.

A partly copied file (an interrupted download, a full disk, a network share) must never be read as a volume:
SimpleITK reads a ``.nii.gz`` cut to 5% of its length as a volume that is 95% zeros, and ITK's NIfTI writer
leaves a truncated file without an error when the disk fills. Every image that rexground reads or writes goes
through :func:`verified_pixels` (reads) or :func:`check_image_file` (writes), which check:

* gzip (``.nii.gz``, NRRD ``encoding: gzip``): every member ends with its end-of-stream marker and a CRC32 and
  ISIZE trailer that match the data (zlib checks both while inflating; ISIZE is the length mod 2^32, so a
  stream over 4 GiB is checked correctly); after the last member only zero padding may follow.
* zlib (MetaImage ``CompressedData = True``) and bzip2 (NRRD): the stream ends and its checksum matches.
* the pixel data is exactly as long as the header says: the decompressed payload, the data block after the
  header, or a detached data file (``.raw``, ``.zraw``, ``.raw.gz``).

The pixel data of gzip NIfTI (the dataset's format) and of compressed MetaImage (the container's) is kept
while it is checked, so a check costs no second decompression: :func:`verified_pixels` returns it and the
reader builds the array from it. Other formats are checked (uncompressed ones from the file size alone) and
then read by SimpleITK. Every problem is an :class:`InputFileError` with one line naming the file.
"""

from __future__ import annotations

import bz2
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rexground.errors import InputFileError

_CHUNK = 1 << 20  # compressed bytes read per call
_MAX_PIECE = 64 << 20  # decompressed bytes per zlib call: a mostly-zero mask inflates 1000:1
_NIFTI_HEAD = 540  # bytes that hold a NIfTI-1 (348) or NIfTI-2 (540) header

# NIfTI datatype code -> numpy dtype (scalar types only; RGB and complex files are left to ITK).
_NIFTI_DTYPES = {
    2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 64: np.float64, 256: np.int8, 512: np.uint16,
    768: np.uint32, 1024: np.int64, 1280: np.uint64,
}  # fmt: skip
# MET_LONG / MET_ULONG are left out: their width follows the writer's platform, so ITK decides.
_MET_DTYPES = {
    "MET_CHAR": np.int8, "MET_UCHAR": np.uint8, "MET_SHORT": np.int16, "MET_USHORT": np.uint16,
    "MET_INT": np.int32, "MET_UINT": np.uint32,
    "MET_LONG_LONG": np.int64, "MET_ULONG_LONG": np.uint64, "MET_FLOAT": np.float32, "MET_DOUBLE": np.float64,
}  # fmt: skip
_NRRD_DTYPES = {
    **dict.fromkeys(("signed char", "int8", "int8_t"), np.int8),
    **dict.fromkeys(("uchar", "unsigned char", "uint8", "uint8_t"), np.uint8),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t"), np.int16),
    **dict.fromkeys(("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), np.uint16),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t"), np.int32),
    **dict.fromkeys(("uint", "unsigned int", "uint32", "uint32_t"), np.uint32),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long", "signed long long int",
                     "int64", "int64_t"), np.int64),
    **dict.fromkeys(("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"),
                    np.uint64),
    "float": np.float32,
    "double": np.float64,
}  # fmt: skip


def _n(value: int) -> str:
    return f"{value:,}"


@dataclass(frozen=True)
class Pixels:
    """Pixel data decoded while it was checked: flat, native byte order, in file order (index i fastest,
    components of a voxel adjacent), ``components`` values per voxel."""

    data: np.ndarray
    components: int = 1


# --- compressed streams ----------------------------------------------------------------------------------


def inflate(
    path: Path,
    kind: str,
    sink: Callable[[bytes], None],
    *,
    start: int = 0,
    length: int | None = None,
    expected: Callable[[], int | None] = lambda: None,
    header: str = "header",
) -> int:
    """Inflate the compressed stream of ``path`` that begins at byte ``start`` (and is ``length`` bytes long
    when the header says so), handing the output to ``sink`` piece by piece; returns the decompressed length.

    ``kind`` is "gzip" (any number of members; after the last only zero padding), "zlib" (zlib or gzip
    header, as MetaIO reads it) or "bzip2" (one stream). Raises when the stream ends early (no end-of-stream
    marker), a checksum or length trailer does not match, other bytes follow it, or it inflates to more
    than ``expected()`` bytes (what the ``header`` describes, once known)."""

    def new():
        return bz2.BZ2Decompressor() if kind == "bzip2" else zlib.decompressobj(31 if kind == "gzip" else 47)

    out = read = members = 0  # members: complete gzip members so far
    d, started, padding = new(), False, False

    def too_long() -> None:
        limit = expected()
        if limit is not None and out > limit:
            raise InputFileError(path, f"corrupt: the {kind} stream holds more than the {_n(limit)} bytes its "
                                 f"{header} describes")  # fmt: skip

    def feed(data: bytes) -> tuple[bytes, bool]:
        """Feed ``data`` until it is consumed (False) or the stream/member ends (True, what follows it)."""
        nonlocal out
        while True:
            try:
                piece = d.decompress(data, _MAX_PIECE)
            except (zlib.error, OSError, EOFError) as exc:
                if members and "header check" in str(exc):
                    raise InputFileError(path, f"corrupt: bytes that are not gzip data follow the end of its gzip "
                                         f"stream (within its first {_n(start + read)} bytes)") from None  # fmt: skip
                if (out == 0 and "header check" in str(exc)) or "invalid data stream" in str(exc):
                    raise InputFileError(path, f"cannot be read as an image: its data is not {kind}-compressed "
                                         "(no gzip/zlib/bzip2 header where the format puts one)") from None  # fmt: skip
                raise InputFileError(path, _corrupt(kind, exc, start + read)) from None
            if piece:
                out += len(piece)
                too_long()  # before the sink: a known header's length is never exceeded
                sink(piece)
                too_long()  # after it: the first piece may hold the header that says how long the data is
            if d.eof:
                return d.unused_data, True
            if kind == "bzip2":
                if d.needs_input:
                    return b"", False
                data = b""
            else:
                data = d.unconsumed_tail
                if not data:
                    return b"", False

    with path.open("rb") as f:
        f.seek(start)
        while True:
            want = _CHUNK if length is None else min(_CHUNK, length - read)
            chunk = f.read(want) if want > 0 else b""
            if not chunk:
                break
            read += len(chunk)
            data = chunk
            while data:
                if padding:
                    if data.strip(b"\0"):
                        raise InputFileError(path, f"corrupt: bytes that are not {kind} data follow the {kind} "
                                             f"stream (within bytes {_n(start + read - len(data))} to "
                                             f"{_n(start + read)})")  # fmt: skip
                    break
                if kind == "gzip" and not started and out and data[0] == 0:
                    padding = True  # zero padding after the last member, as gzip(1) accepts it
                    continue
                started = True
                data, ended = feed(data)
                if ended:
                    if kind != "gzip":
                        if data or (f.read(1) if length is None else read < length):
                            raise InputFileError(path, f"corrupt: bytes follow the end of its {kind} stream")
                        return out
                    d, started, members = new(), False, members + 1  # another gzip member may follow
    if started or (out == 0 and not padding):
        limit = expected()
        held = f" of the {_n(limit)} bytes its {header} describes" if limit is not None else " bytes"
        if limit is not None and out == limit and kind == "gzip":
            held += " (all of them: only its CRC32/length trailer is missing)"
        raise InputFileError(path, f"truncated: the {kind} stream ends after {_n(start + read)} bytes without "
                             f"its end-of-stream marker (an incomplete copy?); it held {_n(out)}{held}")  # fmt: skip
    return out


def _corrupt(kind: str, exc: Exception, at: int) -> str:
    reason = str(exc).split(":")[-1].strip() or type(exc).__name__
    if reason == "incorrect data check":
        reason = "CRC32 mismatch (incorrect data check)" if kind == "gzip" else "checksum mismatch"
    elif reason == "incorrect length check":
        reason = "ISIZE (length) mismatch"
    return f"corrupt: {kind} data error within its first {_n(at)} bytes: {reason}"


class _Buffer:
    """Collects decompressed pieces into one array, preallocated once the total size is known (from
    ``size`` or, after ``head_size`` bytes, from ``size_from_head(head)``)."""

    def __init__(self, size: int | None = None, head_size: int = 0, size_from_head=None):
        self.head = bytearray()
        self.head_size, self.size_from_head = head_size, size_from_head
        self.array: np.ndarray | None = None
        self.pos = 0
        if size is not None:
            self.array = _allocate(size)

    def __call__(self, piece: bytes) -> None:
        if self.array is None:
            self.head += piece
            if len(self.head) < self.head_size:
                return
            self.array = _allocate(self.size_from_head(bytes(self.head[: self.head_size])))
            piece, self.head = bytes(self.head), bytearray()
        n = min(len(piece), self.array.size - self.pos)  # inflate refuses what is longer than the header says
        self.array[self.pos : self.pos + n] = np.frombuffer(piece, np.uint8, count=n)
        self.pos += n

    def result(self) -> np.ndarray:
        if self.array is None:
            return np.frombuffer(bytes(self.head), np.uint8)
        return self.array[: self.pos]


def _allocate(size: int) -> np.ndarray:
    try:
        return np.empty(size, np.uint8)
    except (MemoryError, ValueError):
        raise MemoryError(f"cannot hold the {_n(size)} bytes of pixel data its header describes") from None


# --- NIfTI ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NiftiLayout:
    """Where a NIfTI file's pixel data is and how long it is, from its header."""

    vox_offset: int
    shape: tuple[int, ...]  # dim[1 .. dim[0]], index i first
    dtype: np.dtype | None  # None: a datatype left to ITK (RGB, complex, ...)
    nbytes: int
    scaled: bool  # ITK rescales (slope, intercept) to float: the read is left to ITK

    @property
    def total(self) -> int:
        return self.vox_offset + self.nbytes


def nifti_layout(path: Path, head: bytes) -> NiftiLayout:
    """Parse the first 348 (NIfTI-1) or 540 (NIfTI-2) bytes of a NIfTI file."""
    if len(head) < 4:
        raise InputFileError(path, f"truncated: {_n(len(head))} bytes, shorter than a NIfTI header")
    for endian in "<>":
        sizeof_hdr = struct.unpack(endian + "i", head[:4])[0]
        if sizeof_hdr in (348, 540):
            break
    else:
        raise InputFileError(
            path, "cannot be read as an image: not a NIfTI header (sizeof_hdr is not 348 or 540)"
        )
    if len(head) < sizeof_hdr:
        raise InputFileError(
            path, f"truncated: {_n(len(head))} bytes, shorter than its {sizeof_hdr}-byte NIfTI header"
        )
    if sizeof_hdr == 348:
        dim = struct.unpack(endian + "8h", head[40:56])
        datatype, bitpix = struct.unpack(endian + "hh", head[70:74])
        vox_offset_f, slope, inter = struct.unpack(endian + "fff", head[108:120])
        vox_offset = int(vox_offset_f) if np.isfinite(vox_offset_f) else 0
        minimum = 352
    else:
        datatype, bitpix = struct.unpack(endian + "hh", head[12:16])
        dim = struct.unpack(endian + "8q", head[16:80])
        vox_offset = struct.unpack(endian + "q", head[168:176])[0]
        slope, inter = struct.unpack(endian + "dd", head[176:192])
        minimum = 544
    ndim = dim[0]
    if not 1 <= ndim <= 7 or any(d < 1 for d in dim[1 : ndim + 1]):
        raise InputFileError(path, f"has an invalid NIfTI dim field {list(dim)}")
    if bitpix <= 0 or bitpix % 8:
        raise InputFileError(path, f"has an invalid NIfTI bitpix {bitpix}")
    if vox_offset == 0:
        vox_offset = minimum  # old writers leave 0 for "right after the header", as readers take it
    if vox_offset < minimum:
        raise InputFileError(path, f"has an invalid NIfTI vox_offset {vox_offset} (at least {minimum})")
    shape = tuple(int(d) for d in dim[1 : ndim + 1])
    nbytes = int(np.prod(shape, dtype=object)) * (bitpix // 8)
    scalar = _NIFTI_DTYPES.get(datatype)
    dtype = np.dtype(scalar).newbyteorder(endian) if scalar is not None else None
    if dtype is not None and dtype.itemsize * 8 != bitpix:
        dtype = None
    slope = slope if np.isfinite(slope) and slope != 0 else 1.0  # ITK and nibabel read slope 0 as 1
    inter = inter if np.isfinite(inter) else 0.0
    return NiftiLayout(vox_offset, shape, dtype, nbytes, scaled=slope != 1.0 or inter != 0.0)


def _nifti_uncompressed(path: Path) -> None:
    with path.open("rb") as f:
        head = f.read(_NIFTI_HEAD)
    layout = nifti_layout(path, head)
    _check_length(path, path.stat().st_size, layout.total, "NIfTI header")


def _nifti_gz(path: Path, keep: bool) -> Pixels | None:
    """Inflate a gzip NIfTI once, checking the stream and the pixel data's length against the header."""
    layouts: list[NiftiLayout] = []
    head = bytearray()

    def layout_of(first: bytes) -> int:
        layouts.append(nifti_layout(path, first))
        return layouts[0].total

    buffer = _Buffer(head_size=_NIFTI_HEAD, size_from_head=layout_of) if keep else None

    def sink(piece: bytes) -> None:
        if buffer is not None:
            buffer(piece)
        elif not layouts:
            head.extend(piece[: _NIFTI_HEAD - len(head)])
            if len(head) >= _NIFTI_HEAD:
                layout_of(bytes(head))

    total = inflate(path, "gzip", sink, expected=lambda: layouts[0].total if layouts else None,
                    header="NIfTI header")  # fmt: skip
    data = buffer.result() if buffer is not None else None
    if not layouts:  # a file smaller than 540 bytes in all (a NIfTI-1 image of a few voxels)
        layout_of(bytes(data) if data is not None else bytes(head))
    layout = layouts[0]
    if total < layout.total:
        raise InputFileError(path, f"truncated: its gzip stream is complete but holds {_n(total)} of the "
                             f"{_n(layout.total)} bytes its NIfTI header describes")  # fmt: skip
    if data is None or layout.dtype is None or layout.scaled:
        return None
    pixels = data[layout.vox_offset :].view(layout.dtype)
    if not layout.dtype.isnative:
        pixels = pixels.astype(layout.dtype.newbyteorder("="))
    return Pixels(pixels)


def _check_length(path: Path, have: int, expected: int, header: str, compressed: bool = False) -> None:
    what = "decompressed " if compressed else ""
    if have < expected:
        raise InputFileError(path, f"truncated: {_n(have)} of the {_n(expected)} {what}bytes its {header} "
                             "describes")  # fmt: skip
    if have > expected:
        raise InputFileError(path, f"corrupt: {_n(have)} {what}bytes, {_n(have - expected)} more than the "
                             f"{_n(expected)} its {header} describes")  # fmt: skip


# --- MetaImage --------------------------------------------------------------------------------------------


def _text_header(
    path: Path, stop: Callable[[str], bool], what: str, limit: int = 1 << 16, whole_file: bool = False
) -> tuple[list[str], int]:
    """The header lines of a text-header format up to and including the line ``stop`` accepts, and the byte
    offset just after it (where attached data begins). ``whole_file``: the file is a detached header, which
    may also end at the end of the file."""
    with path.open("rb") as f:
        head = f.read(limit)
    lines, pos = [], 0
    while pos < len(head):
        end = head.find(b"\n", pos)
        if end < 0:
            break
        line = head[pos:end].decode("latin-1").rstrip("\r")
        lines.append(line)
        pos = end + 1
        if stop(line):
            return lines, pos
    if whole_file and len(head) < limit:
        lines.append(head[pos:].decode("latin-1").rstrip("\r\n"))
        return lines, len(head)
    raise InputFileError(path, f"cannot be read as an image: no complete {what} header in its first "
                         f"{_n(min(len(head), limit))} bytes (truncated, or not a {what} file)")  # fmt: skip


def _meta_fields(lines: list[str]) -> dict[str, str]:
    fields = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    return fields


def _metaimage(path: Path, keep: bool) -> Pixels | None:
    lines, data_start = _text_header(
        path, lambda line: line.split("=")[0].strip().lower() == "elementdatafile", "MetaImage"
    )
    f = _meta_fields(lines)
    try:
        dims = [int(v) for v in f["dimsize"].split()]
        dtype = np.dtype(_MET_DTYPES[f["elementtype"].upper()])
    except (KeyError, ValueError):
        return None  # unusual header (an ASCII or unknown element type): ITK decides
    if f.get("binarydata", "true").lower() not in ("true", "1"):
        return None
    components = int(f.get("elementnumberofchannels", "1") or 1)
    msb = f.get("binarydatabyteordermsb", f.get("elementbyteordermsb", "false")).lower() in ("true", "1")
    dtype = dtype.newbyteorder(">" if msb else "<")
    nbytes = int(np.prod(dims, dtype=object)) * components * dtype.itemsize
    compressed = f.get("compresseddata", "false").lower() in ("true", "1")
    data_file = f["elementdatafile"]
    if data_file.upper() == "LOCAL":
        source, start = path, data_start
    elif data_file.upper().startswith("LIST") or "%" in data_file.split()[0]:
        return None  # one file per slice: left to ITK
    else:
        source, start = path.parent / data_file, 0
        if not source.is_file():
            raise InputFileError(path, f"its data file {source.name} does not exist")
    header_size = int(f.get("headersize", "0") or 0)
    if header_size == -1 and not compressed:  # "-1": the data is the last nbytes of the data file
        start = max(0, source.stat().st_size - nbytes)
    elif header_size > 0:
        start += header_size
    if not compressed:
        _check_length(path if source == path else source, source.stat().st_size - start, nbytes,
                      "MetaImage header" if source == path else f"header {path.name}")  # fmt: skip
        return None
    length = None
    if "compresseddatasize" in f:
        length = int(f["compresseddatasize"])
        available = source.stat().st_size - start
        if available < length:
            raise InputFileError(source, f"truncated: {_n(available)} of the {_n(length)} compressed bytes its "
                                 "MetaImage header describes")  # fmt: skip
        if available > length:
            raise InputFileError(source, f"corrupt: {_n(available - length)} bytes follow the "
                                 f"{_n(length)} compressed bytes its MetaImage header describes")  # fmt: skip
    buffer = _Buffer(size=nbytes) if keep else None
    total = inflate(source, "zlib", buffer if buffer is not None else _discard, start=start, length=length,
                    expected=lambda: nbytes, header="MetaImage header")  # fmt: skip
    _check_length(source, total, nbytes, "MetaImage header", compressed=True)
    if buffer is None:
        return None
    pixels = buffer.result().view(dtype)
    if not dtype.isnative:
        pixels = pixels.astype(dtype.newbyteorder("="))
    return Pixels(pixels, components)


def _discard(piece: bytes) -> None:
    pass


# --- NRRD -------------------------------------------------------------------------------------------------


def _nrrd(path: Path) -> None:
    with path.open("rb") as fh:
        magic = fh.read(8)
    if not magic.startswith(b"NRRD"):
        raise InputFileError(path, "is not a NRRD file (no NRRD magic)")
    detached = path.name.lower().endswith(".nhdr")
    lines, data_start = _text_header(path, lambda line: line.strip() == "", "NRRD", whole_file=detached)
    fields = {}
    for line in lines[1:]:
        if line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        fields[key.strip().lower()] = value.lstrip("=").strip()
    try:
        sizes = [int(v) for v in fields["sizes"].split()]
        dtype = np.dtype(_NRRD_DTYPES[fields["type"].lower()])
    except (KeyError, ValueError):
        return  # block or unknown types: ITK decides
    nbytes = int(np.prod(sizes, dtype=object)) * dtype.itemsize
    encoding = fields.get("encoding", "raw").lower()
    data_file = fields.get("data file", fields.get("datafile"))
    if data_file is not None:
        if data_file.upper().startswith("LIST") or len(data_file.split()) > 1:
            return  # several data files: ITK decides
        source, start = path.parent / data_file, 0
        if not source.is_file():
            raise InputFileError(path, f"its data file {source.name} does not exist")
    elif detached:
        raise InputFileError(path, "is a detached NRRD header without a 'data file' field")
    else:
        source, start = path, data_start
    skip = int(fields.get("byte skip", "0") or 0)
    if fields.get("line skip", "0") not in ("", "0"):
        return  # line-skipped data: ITK decides
    if encoding == "raw":
        have = source.stat().st_size - start
        if skip == -1:  # the data is the last nbytes of the file
            if have < nbytes:
                raise InputFileError(source, f"truncated: {_n(have)} of the {_n(nbytes)} bytes its NRRD header "
                                     "describes")  # fmt: skip
            return
        _check_length(source, have - skip, nbytes, "NRRD header")
    elif encoding in ("gzip", "gz", "bzip2", "bz2"):
        kind = "gzip" if encoding.startswith("gz") else "bzip2"
        limit = None if skip == -1 else nbytes + skip
        total = inflate(source, kind, _discard, start=start, expected=lambda: limit, header="NRRD header")
        if skip != -1:
            _check_length(source, total - skip, nbytes, "NRRD header", compressed=True)
        elif total < nbytes:
            raise InputFileError(source, f"truncated: {_n(total)} of the {_n(nbytes)} decompressed bytes its "
                                 "NRRD header describes")  # fmt: skip


# --- entry points -----------------------------------------------------------------------------------------


def verified_pixels(path: str | Path, keep: bool = True) -> Pixels | None:
    """Check the integrity of an image file (see the module docstring) and return its pixel data when it was
    decoded on the way (gzip NIfTI, compressed MetaImage), else ``None`` (the file is sound; let ITK read
    it). Raises :class:`InputFileError` naming the file and the problem."""
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith(".nii.gz"):
            with path.open("rb") as f:  # gzip starts 1f 8b; a NIfTI header starts with sizeof_hdr (348, 540)
                compressed = f.read(1) == b"\x1f"
            if compressed:
                return _nifti_gz(path, keep)
            _nifti_uncompressed(path)  # a plain NIfTI under a .nii.gz name: ITK reads those too
            return None
        if name.endswith(".nii"):
            _nifti_uncompressed(path)
        elif name.endswith((".mha", ".mhd")):
            return _metaimage(path, keep)
        elif name.endswith((".nrrd", ".nhdr")):
            _nrrd(path)
    except MemoryError as exc:
        raise InputFileError(path, f"out of memory while reading: {exc}") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot be read: {exc.strerror or exc}") from None
    return None


def check_image_file(path: str | Path) -> None:
    """Check a file's integrity without keeping its pixels (e.g. a file just written)."""
    verified_pixels(path, keep=False)
