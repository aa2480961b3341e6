"""Input discovery and loading: every bad input becomes a one-line reason (no torch)."""
import os

import cv2
import numpy as np
import pytest

from digitize.io import InputError, InputItem, discover, load_pages, shard


def _pdf(path, n_pages=1):
    """A minimal PDF with vector lines on each page (what ECG PDFs mostly are)."""
    objs = ["<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>")
    for i in range(n_pages):
        stream = "1 0 0 RG 0.5 w " + " ".join(f"{x} 0 m {x} 612 l S" for x in range(0, 792, 14))
        stream += " 0 0 0 RG 1.5 w 50 300 m " + " ".join(
            f"{x} {300 + 40 * np.sin(x / 9):.1f} l" for x in range(50, 740, 3)) + " S"
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 792 612] "
                    f"/Contents {4 + 2 * i} 0 R >>")
        objs.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    out, offsets = "%PDF-1.4\n", []
    for i, o in enumerate(objs):
        offsets.append(len(out))
        out += f"{i + 1} 0 obj\n{o}\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n"
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    path.write_bytes(out.encode())
    return path


@pytest.fixture
def folder(tmp_path):
    img = np.full((300, 800, 3), 255, np.uint8)
    cv2.line(img, (0, 150), (799, 150), (0, 0, 0), 2)
    good = tmp_path / "in" / "ward A" / "page(1).png"
    good.parent.mkdir(parents=True)
    cv2.imwrite(str(good), img)
    cv2.imwrite(str(tmp_path / "in" / "b.jpg"), img)
    (tmp_path / "in" / "notes.txt").write_text("not an ecg")
    (tmp_path / "in" / "dir.png").mkdir()  # a directory named like an image
    _pdf(tmp_path / "in" / "two.pdf", n_pages=2)
    return tmp_path / "in"


def test_discover_sorted_recursive_and_sharded(folder):
    items = discover([folder])
    rels = [str(i.rel) for i in items]
    assert rels == ["b.jpg", "two.pdf", "ward A/page(1).png"]  # .txt and the directory skipped
    assert discover([folder, folder / "b.jpg"]) == items  # no duplicates
    parts = [shard(items, k, 2) for k in range(2)]
    assert [str(i.rel) for i in parts[0]] == ["b.jpg", "ward A/page(1).png"]
    assert sorted(parts[0] + parts[1], key=items.index) == items
    with pytest.raises(ValueError):
        shard(items, 2, 2)


def test_load_images_and_pdf_pages(folder):
    items = {str(i.rel): i for i in discover([folder])}
    (n, img, _), = load_pages(items["ward A/page(1).png"])
    assert n == 1 and img.shape == (300, 800, 3) and img.dtype == np.uint8
    pages = list(load_pages(items["two.pdf"]))
    assert [p for p, _, _ in pages] == [1, 2]
    assert pages[0][1].shape[:2] == (int(612 * 200 / 72), int(792 * 200 / 72))
    assert pages[0][1].min() < 60  # the black line was drawn


@pytest.mark.parametrize("kind,reason", [
    ("empty", "empty file"), ("text", "not a readable image"), ("truncated", "not a readable"),
    ("tiny", "too small"), ("badpdf", "not a readable PDF"), ("dir", "is a directory"),
    ("ext", "unsupported file type"),
])
def test_bad_inputs_get_one_line_reasons(tmp_path, kind, reason):
    p = {"empty": "e.png", "text": "t.jpg", "truncated": "c.png", "tiny": "one.png",
         "badpdf": "b.pdf", "dir": "d.png", "ext": "x.gif"}[kind]
    path = tmp_path / p
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a JPEG")
    elif kind == "truncated":
        ok, buf = cv2.imencode(".png", np.zeros((400, 400, 3), np.uint8) + 200)
        path.write_bytes(buf.tobytes()[:200])
    elif kind == "tiny":
        cv2.imwrite(str(path), np.zeros((1, 1, 3), np.uint8))
    elif kind == "badpdf":
        path.write_bytes(b"%PDF-1.4 garbage")
    elif kind == "dir":
        path.mkdir()
    elif kind == "ext":
        path.write_bytes(b"GIF89a")
    with pytest.raises(InputError, match=reason) as exc:
        list(load_pages(InputItem(path, tmp_path)))
    assert "\n" not in str(exc.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable_permissions(tmp_path):
    p = tmp_path / "locked.png"
    cv2.imwrite(str(p), np.zeros((100, 100, 3), np.uint8))
    p.chmod(0)
    with pytest.raises(InputError, match="permission denied"):
        list(load_pages(InputItem(p, tmp_path)))


@pytest.mark.parametrize("variant", ["grey", "grey16", "bgra", "bgr16"])
def test_pixel_formats_become_bgr8(tmp_path, variant):
    base = np.full((200, 300), 128, np.uint8)
    img = {"grey": base, "grey16": base.astype(np.uint16) * 257,
           "bgra": np.dstack([base, base, base, np.full_like(base, 0)]),
           "bgr16": np.dstack([base.astype(np.uint16) * 257] * 3)}[variant]
    p = tmp_path / f"{variant}.png"
    cv2.imwrite(str(p), img)
    (_, out, _), = load_pages(InputItem(p, tmp_path))
    assert out.shape == (200, 300, 3) and out.dtype == np.uint8
    expected = 255 if variant == "bgra" else 128  # fully transparent → white paper
    assert abs(int(out[100, 150, 0]) - expected) <= 1
