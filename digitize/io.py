"""Finding and loading inputs: image files and PDF pages → 8-bit BGR arrays.

Every failure a normal archive throws at us (empty, truncated or mislabelled files, 1×1 px
images, decompression bombs, broken PDFs, unreadable permissions) becomes an ``InputError``
with a one-line reason; callers report it with the file name and carry on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
PDF_EXTS = (".pdf",)
#: Refuse images above this many pixels (a 600-dpi letter page is ~34 MP).
MAX_PIXELS = 200_000_000
#: Smallest side worth looking at (a 250-mm strip at 2.5 px/mm is 150 px tall).
MIN_SIDE = 64
#: PDF pages are rasterised at this resolution (ECG PDFs are mostly vector drawings).
PDF_DPI = 200.0
#: Pages are read at no more than this many pixels (an A4 page at ~340 dpi, 13 px/mm: well
#: above what the page reader and the model's 4 px/mm strips need). Larger inputs are brought
#: down to it as they are decoded (JPEG: by the decoder's own DCT scaling), so a 12000x9000
#: photo costs the memory and time of a 4000x3000 one.
MAX_WORK_PIXELS = 10_000_000


class DigitizeError(Exception):
    """Base of every expected, per-input failure: the message is the one-line reason."""


class InputError(DigitizeError):
    """The input cannot be read as an image or PDF."""


@dataclass(frozen=True)
class InputItem:
    path: Path
    root: Path  # the input argument it was found under (for relative output names)

    @property
    def rel(self) -> Path:
        try:
            return self.path.relative_to(self.root)
        except ValueError:
            return Path(self.path.name)

    @property
    def is_pdf(self) -> bool:
        return self.path.suffix.lower() in PDF_EXTS


def discover(inputs: list[str | Path], exclude: tuple[Path, ...] = ()
             ) -> list[InputItem]:
    """Files named directly are taken as they are (a bad one fails later with its reason);
    folders are searched recursively for images and PDFs. Sorted, duplicates dropped.
    A directory named like an image is searched like any folder, never opened as an image.

    Never taken from a folder search: the trees in ``exclude`` (the run's own ``--out``), any
    folder holding a digitize output marker (an earlier run's output) and the overlays
    digitize writes (``*.overlay.png``), so that output kept inside the input is not read back
    as new pages. A folder named as input is searched even when it is an output folder itself
    (``digitize scans --out scans``): its own files are filtered by name."""
    from digitize.files import MARKER
    skip = {os.path.realpath(p) for p in exclude}
    seen, items = set(), []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            root = p
            found = []
            for d, dirs, files in os.walk(p):
                if d != str(p) and (os.path.realpath(d) in skip or MARKER in files):
                    dirs[:] = []
                    continue
                if MARKER in files:  # an output folder named as input: not its own folders
                    dirs[:] = [x for x in dirs if x not in OWN_FOLDERS]
                dirs.sort()
                found += [Path(d) / f for f in files if _wanted(f)]
        else:
            root = p.parent
            found = [p]
        for q in found:
            key = os.path.abspath(q)
            if key not in seen:
                seen.add(key)
                items.append(InputItem(q, root))
    return sorted(items, key=lambda i: (str(i.root), str(i.rel)))


#: Folders digitize itself writes inside an output folder (the report's pictures, temp files).
OWN_FOLDERS = ("report", ".tmp")
#: What digitize itself writes next to records (never an input).
OWN_OUTPUTS = (".overlay.png", ".thumb.png", ".thumb.jpg")


def _wanted(name: str) -> bool:
    low = name.lower()
    return low.endswith(IMAGE_EXTS + PDF_EXTS) and not low.endswith(OWN_OUTPUTS)


def shard(items: list[InputItem], k: int, n: int) -> list[InputItem]:
    """The i-th input of the sorted list belongs to shard i % n."""
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"--shard {k}/{n}: need 0 <= K < N")
    return [it for i, it in enumerate(items) if i % n == k]


def _to_bgr8(img: np.ndarray) -> np.ndarray:
    """Grey, grey+alpha, BGR, BGRA, 8- or 16-bit, float → 8-bit BGR (alpha over white)."""
    import cv2
    if img.dtype == np.uint16:
        img = (img / 257.0 + 0.5).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0) + 0.5, 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise InputError(f"unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        a = img[..., 3:4].astype(np.float32) / 255.0
        return (img[..., :3] * a + 255.0 * (1 - a) + 0.5).astype(np.uint8)
    if img.shape[2] == 2:  # grey + alpha
        a = img[..., 1:2].astype(np.float32) / 255.0
        g = (img[..., :1] * a + 255.0 * (1 - a) + 0.5).astype(np.uint8)
        return cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
    return img


def _check_size(w: int, h: int) -> None:
    if w * h > MAX_PIXELS:
        raise InputError(f"image too large ({w}x{h} px > {MAX_PIXELS // 1_000_000} MP limit)")
    if min(w, h) < MIN_SIDE:
        raise InputError(f"image too small ({w}x{h} px) to hold an ECG")


def working_scale(w: int, h: int) -> float:
    """The factor (<= 1) that brings a w x h page to the working resolution."""
    return min(1.0, (MAX_WORK_PIXELS / max(1, w * h)) ** 0.5)


def _to_working(img: np.ndarray, scale: float) -> np.ndarray:
    import cv2
    h, w = img.shape[:2]
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    return img if size == (w, h) else cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def load_image(path: Path) -> tuple[np.ndarray, float]:
    """Decode an image file (EXIF orientation applied) → (8-bit BGR at the working
    resolution, its scale relative to the file's pixels)."""
    import cv2
    data = _read_bytes(path)
    buf = np.frombuffer(data, np.uint8)
    # JPEG: IMREAD_COLOR applies the EXIF orientation (phone photos); other formats:
    # IMREAD_UNCHANGED keeps 16-bit depth and alpha, which _to_bgr8 resolves
    jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    flag, reduced = (cv2.IMREAD_COLOR if jpeg else cv2.IMREAD_UNCHANGED), 1
    if jpeg:
        # the size from an 1/8 decode (cheap), then the largest DCT reduction that stays at or
        # above the working resolution
        small = cv2.imdecode(buf, cv2.IMREAD_REDUCED_GRAYSCALE_8)
        if small is not None:
            h8, w8 = small.shape[:2]
            _check_size(w8 * 8, h8 * 8)
            for f, fl in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                          (2, cv2.IMREAD_REDUCED_COLOR_2)):
                if (w8 * 8 / f) * (h8 * 8 / f) >= MAX_WORK_PIXELS:
                    flag, reduced = fl, f
                    break
    img = cv2.imdecode(buf, flag)
    del buf, data
    if img is None:
        raise InputError("not a readable image (corrupt, truncated or not an image format)")
    h, w = img.shape[:2]
    _check_size(w * reduced, h * reduced)
    scale = working_scale(w, h)
    img = _to_working(img, scale)
    return _to_bgr8(img), scale / reduced


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except PermissionError:
        raise InputError("permission denied") from None
    except IsADirectoryError:
        raise InputError("is a directory") from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}") from None
    if not data:
        raise InputError("empty file (0 bytes)")
    return data


def load_pdf(path: Path, dpi: float = PDF_DPI) -> Iterator[tuple[int, np.ndarray, float]]:
    """Rasterise every page of a PDF → (1-based page number, 8-bit BGR, its scale relative to
    ``dpi``: below 1 for a page too large to read at ``dpi``)."""
    import pypdfium2 as pdfium
    data = _read_bytes(path)
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise InputError(f"not a readable PDF ({exc})") from None
    try:
        if len(pdf) == 0:
            raise InputError("PDF has no pages")
        for i in range(len(pdf)):
            page = pdf[i]
            w_pt, h_pt = page.get_size()
            scale = dpi / 72.0
            _check_size(int(w_pt * scale), int(h_pt * scale))
            work = working_scale(int(w_pt * scale), int(h_pt * scale))
            bitmap = page.render(scale=scale * work, fill_color=(255, 255, 255, 255))
            arr = np.array(bitmap.to_numpy(), copy=True)
            mode = bitmap.mode
            page.close()
            if mode in ("BGRA", "BGRX"):
                arr = arr[..., :3]
            elif mode in ("RGBA", "RGBX", "RGB"):
                arr = arr[..., 2::-1] if arr.shape[2] >= 3 else arr
            yield i + 1, _to_bgr8(np.ascontiguousarray(arr)), work
    finally:
        pdf.close()


def load_pages(item: InputItem) -> Iterator[tuple[int, np.ndarray, float]]:
    """(page number, BGR image, scale) for every page of an input; images have one page (1).
    ``scale``: the image's pixels per pixel of the file (or of the PDF at ``PDF_DPI``); below
    1 where a large input was brought down to the working resolution."""
    suffix = item.path.suffix.lower()
    if item.path.is_dir():
        raise InputError("is a directory")
    if suffix in PDF_EXTS:
        yield from load_pdf(item.path)
    elif suffix in IMAGE_EXTS:
        yield (1, *load_image(item.path))
    else:
        raise InputError(f"unsupported file type {suffix or '(no extension)'!r}")
