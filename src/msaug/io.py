"""Atomic file writing and image/label-map file formats.

Every file msaug writes goes through :func:`atomic_write` (temporary name in the same
folder, fsync, rename), so a killed run never leaves a half-written file under its final
name; a resumed run can trust every file it finds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image as PILImage

from msaug.errors import DataError

PILImage.MAX_IMAGE_PIXELS = 1 << 28  # real chest X-rays are large; refuse only absurd files


#: this host's name as written into temporary file names (no dots, which separate the parts)
_HOST = "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())[:40] or "host"


def _owner() -> str:
    """Host and pid of the writer, in every temporary file's name, so a resumed run can tell the
    leftovers of a killed process from the files a live process (another shard) is writing.
    The pid is read at each write: a forked worker writes under its own."""
    return f"{_HOST}~{os.getpid()}"


def remove_stale_temp_files(root: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that killed writers on this host left under ``root``.

    A file is stale when its name carries this host and a process id that no longer runs;
    files of live processes and of other hosts are kept. Returns the removed paths.
    """
    removed = []
    for tmp in Path(root).rglob(".*.tmp"):
        owner = next((p for p in tmp.name.split(".") if "~" in p), None)
        host, _, pid = (owner or "").partition("~")
        if host != _HOST or not pid.isdigit() or _alive(int(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        pass
    return True


def _umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux: /proc)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _file_mode(path: Path) -> int:
    """The mode a plain ``open(path, "w")`` would leave: an existing file's own, else 0666 & ~umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", sync: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` atomically.

    The file gets the mode a plain open would give it (mkstemp's 0600 would hide a shared
    dataset from colleagues), and an OS error while writing names ``path``, not the temporary file.
    ``sync=False`` skips the fsync before the rename: a killed process still leaves either the
    old file or the whole new one, but after a power loss the new one may be empty, so only files
    whose content is checked on every resume (a sha256 in a manifest) should skip it.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_owner()}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, _file_mode(path))
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, tmp):
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def append_lines(path: str | os.PathLike[str], lines: Iterator[str] | list[str], sync: bool = False) -> None:
    """Append text ``lines`` (each ending in a newline) to ``path``; an OS error names ``path``.

    For logs and manifests that grow line by line: a kill can leave a torn last line, which
    their readers drop. A write error (a full disk) carries no file name by itself; here it
    names the file, so the CLI can say which one failed. ``sync`` flushes to disk before returning.
    """
    path = Path(path)
    try:
        with open(path, "a", encoding="utf-8") as fh:
            for line in lines:
                fh.write(line)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: str | os.PathLike[str]) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def png_bytes(array: np.ndarray) -> bytes:
    """Encode a 2-D (grey) or HxWx3 (RGB) uint8/uint16 array as PNG."""
    import io

    if array.dtype not in (np.uint8, np.uint16) or (array.dtype == np.uint16 and array.ndim != 2):
        raise ValueError(f"PNG needs uint8 grey/RGB or uint16 grey, got {array.dtype} {array.shape}")
    img = PILImage.fromarray(array)  # uint16 2-D arrays become mode I;16
    buf = io.BytesIO()
    # zlib level 1: a generated 16-bit 128 px radiograph encodes in 1.6 ms instead of 2.8 ms at
    # level 4, for files 5 % larger (label maps: 0.15 ms either way); encoding is on the generation path
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_png(path: str | os.PathLike[str], array: np.ndarray) -> None:
    atomic_write(path, png_bytes(array))


def image_to_array(image: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """``[C, H, W]`` float image in [0, 1] to a uint8/uint16 array for PNG (HxW or HxWx3)."""
    if bit_depth not in (8, 16):
        raise ValueError(f"bit depth must be 8 or 16, not {bit_depth}")
    if image.shape[0] == 3 and bit_depth == 16:
        bit_depth = 8  # PNG via Pillow stores RGB at 8 bits
    peak = 255 if bit_depth == 8 else 65535
    out = np.clip(np.rint(np.asarray(image, dtype=np.float64) * peak), 0, peak)
    out = out.astype(np.uint8 if bit_depth == 8 else np.uint16)
    return out[0] if out.shape[0] == 1 else np.moveaxis(out, 0, -1)


def _open_image(path: Path) -> PILImage.Image:
    """Open an image file for reading, transparently gunzipping ``*.gz`` (STARE ships ``.ppm.gz``)."""
    if path.suffix.lower() == ".gz":
        import gzip
        import io

        with gzip.open(path, "rb") as fh:
            return PILImage.open(io.BytesIO(fh.read()))
    return PILImage.open(path)


def read_image(path: str | os.PathLike[str], channels: int | None = None) -> np.ndarray:
    """Read an image file as float32 ``[C, H, W]`` in [0, 1], respecting its bit depth.

    8-bit files are divided by 255, 16-bit ones by 65535; ``channels`` converts grey to RGB
    (repeated) or RGB to grey; ``*.gz`` files are read through gzip. A missing or unreadable
    file is a :class:`~msaug.errors.DataError` naming it. Part of the public API (``msaug.read_image``).
    """
    path = Path(path)
    try:
        with _open_image(path) as img:
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float64)
                peak = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
                arr = (arr / peak)[None]
            elif mode == "F":
                arr = np.asarray(img, dtype=np.float64)[None]
                lo, hi = float(arr.min()), float(arr.max())
                arr = (arr - lo) / (hi - lo) if hi > lo else arr * 0
            else:
                target = "L" if (channels == 1 or (channels is None and mode in ("L", "1", "P", "LA"))) else "RGB"
                arr = np.asarray(img.convert(target), dtype=np.float64) / 255.0
                arr = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from None
    if channels is not None and arr.shape[0] != channels:
        if channels == 3 and arr.shape[0] == 1:
            arr = np.repeat(arr, 3, axis=0)
        elif channels == 1 and arr.shape[0] == 3:
            arr = arr.mean(axis=0, keepdims=True)
    return arr.astype(np.float32)


def _decode_label_file(path: Path, decode: Callable[[PILImage.Image], np.ndarray]) -> np.ndarray:
    """Open a label file and ``decode`` it; a missing or unreadable file is a DataError naming it."""
    try:
        with _open_image(path) as img:
            img.load()
            return decode(img)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read label map ({exc})") from None


def read_label_array(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a label-map file as an integer ``[H, W]`` array (palette indices kept as indices, RGB as grey).

    Part of the public API (``msaug.read_label_array``); a missing or unreadable file, or one of
    more than one channel after that, is a :class:`~msaug.errors.DataError` naming it.
    """
    path = Path(path)
    arr = _decode_label_file(path, lambda img: np.asarray(img.convert("L") if img.mode in ("RGB", "RGBA", "LA") else img))
    if arr.ndim != 2:
        raise DataError(f"{path}: a label map must have one channel, found shape {arr.shape}")
    return arr.astype(np.int64)


def read_label_raw(path: str | os.PathLike[str], colours: bool = False) -> np.ndarray:
    """A label file as stored: ``[H, W]`` values (grey, 16-bit, palette indices) or ``[H, W, 3]`` RGB.

    Unlike :func:`read_label_array` nothing is converted to grey, so colour masks keep their
    colours (:mod:`msaug.label_values` decides what they mean). ``colours=True`` reads every
    file as RGB (palette files by their palette colours); alpha is dropped.
    """
    path = Path(path)

    def decode(img: PILImage.Image) -> np.ndarray:
        if colours or img.mode in ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "PA"):
            return np.asarray(img.convert("RGB"))
        return np.asarray(img.convert("L") if img.mode == "LA" else img)

    arr = _decode_label_file(path, decode)
    if arr.ndim not in (2, 3):
        raise DataError(f"{path}: a label map must be a 2-D grey, palette or RGB image, found shape {arr.shape}")
    return arr
