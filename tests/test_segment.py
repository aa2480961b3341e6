"""The page segmentation net: its training targets, its ONNX contract, the shipped model's
strokes on rendered pages, and digitize without it."""
import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from conftest import REPO  # noqa: E402
from digitize.segment import (DEFAULT_SEG_MODEL, SEG_PX_PER_MM, Segmenter, seg_input,  # noqa: E402
                              segmenter)


def _page(seed: int, style: str = "clean", **kw):
    render = pytest.importorskip("trainer.render", reason="the renderer draws the test page")
    from trainer.data import SAMPLE_DIR, load_metadata, prepared_signal
    info = load_metadata(SAMPLE_DIR)[seed % 4]
    sig, fs = prepared_signal(SAMPLE_DIR, info)
    spec = render.sample_spec(np.random.default_rng(seed), "3x4+1", style, **kw)
    return render.render_page(sig, fs, spec, header_seed=seed)


def _f1(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(precision, recall) with one pixel of tolerance."""
    k = np.ones((3, 3), np.uint8)
    prec = (pred & cv2.dilate(truth, k)).sum() / max(pred.sum(), 1)
    rec = (truth & cv2.dilate(pred, k)).sum() / max(truth.sum(), 1)
    return float(prec), float(rec)


def test_seg_input_brings_pages_to_the_nets_scale_and_never_enlarges():
    img = np.full((800, 1000, 3), 255, np.uint8)
    small, scale = seg_input(img, 8.0)
    assert scale == pytest.approx(SEG_PX_PER_MM / 8.0) and small.shape == (400, 500, 3)
    same, scale = seg_input(img[..., 0], 3.0)  # a grey page below the net's scale
    assert scale == 1.0 and same.shape == (800, 1000, 3)


def test_stroke_targets_lie_on_the_drawn_pen_and_nothing_else():
    """Oracle: the page's own dark pixels. A clean page without grid, labels, separators, header
    or footer has ink only where the pen went: the mask must cover it and stay on it."""
    pytest.importorskip("trainer.seg_data", reason="needs the renderer")
    from trainer.seg_data import stroke_mask
    page = _page(3, grid="none", labels=False, separators="none", header=False, footer_mm=5.0,
                 trace_width_mm=0.3, trace_colour=(0, 0, 0))
    img, scale = seg_input(page.image, page.meta["px_per_mm"])
    mask = stroke_mask(page, scale, img.shape[:2])
    ink = (cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) < 160).astype(np.uint8)
    prec, rec = _f1(mask, ink)
    assert rec > 0.97, f"{rec:.3f} of the ink is off the stroke mask"
    assert prec > 0.9, f"{prec:.3f} of the stroke mask is on ink"
    # the pulses are strokes too: the mask reaches left of every row's first panel
    x0 = min(m["polyline"][0][0] for m in page.meta["leads"]) * scale
    if page.meta["pulses"] and page.meta["spec"]["pulse"] == "left":
        assert mask[:, :int(x0) - 2].sum() > 0


def test_the_contract_is_checked(tmp_path):
    # the trace model is not a segmentation model: refused by its metadata
    with pytest.raises(RuntimeError, match="not a stroke segmentation model"):
        Segmenter(REPO / "tests" / "fixtures" / "tiny_column.onnx")


def test_export_matches_torch_and_keeps_the_page_size(tmp_path):
    torch = pytest.importorskip("torch", reason="needs the [train] extra (torch)")
    pytest.importorskip("onnx", reason="needs the [train] extra (onnx)")
    from trainer.seg import SegNet, export
    torch.manual_seed(0)
    net = SegNet((4, 6, 8, 8))
    ck = tmp_path / "seg.pt"
    torch.save(dict(model=net.state_dict(), channels=[4, 6, 8, 8], step=0), ck)
    out = export(ck, tmp_path / "seg.onnx")
    seg = Segmenter(out)
    rng = np.random.default_rng(0)
    page = rng.integers(0, 256, (203, 301, 3), dtype=np.uint8)  # not multiples of 8
    p, scale = seg.probability(page, 4.0)
    assert scale == 1.0 and p.shape == (203, 301)
    net.eval()
    with torch.no_grad():
        pad = cv2.copyMakeBorder(page, 0, 5, 0, 3, cv2.BORDER_REPLICATE)
        ref = torch.sigmoid(net(torch.from_numpy(pad.transpose(2, 0, 1)[None].astype(
            np.float32))))[0, 0, :203, :301].numpy()
    assert np.abs(p - ref).max() < 1e-4
    mask = seg.stroke_mask(page, 8.0)  # at the page's own size again
    assert mask.shape == page.shape[:2] and set(np.unique(mask)) <= {0, 1}


def test_int8_export_keeps_the_contract_and_the_float_nets_output(tmp_path):
    """The 8-bit export (calibrated on one page rendered from the bundled records) keeps the
    metadata contract, says it is quantised, and gives the float net's logits to within a
    small share of their range."""
    torch = pytest.importorskip("torch", reason="needs the [train] extra (torch)")
    pytest.importorskip("onnx", reason="needs the [train] extra (onnx)")
    pytest.importorskip("trainer.render", reason="the calibration pages are rendered")
    import onnx
    from trainer.data import SAMPLE_DIR
    from trainer.seg import SegNet, export
    torch.manual_seed(0)
    net = SegNet((4, 6, 8, 8))
    ck = tmp_path / "seg.pt"
    torch.save(dict(model=net.state_dict(), channels=[4, 6, 8, 8], step=0), ck)
    fp = Segmenter(export(ck, tmp_path / "seg.onnx"))
    q_path = export(ck, tmp_path / "seg8.onnx", int8=True, ptbxl_dir=SAMPLE_DIR,
                    calibration_pages=1)
    meta = {p.key: p.value for p in onnx.load(str(q_path)).metadata_props}
    assert meta["format"] == "ecg-stroke-seg/1" and meta["px_per_mm"] == "4.0"
    assert meta["quantized"].startswith("int8")
    q = Segmenter(q_path)
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(q_path)).graph.node)
    page = _page(7, "scan").image
    a = fp.session.run(None, {"page": _pad_input(page)})[0]
    b = q.session.run(None, {"page": _pad_input(page)})[0]
    assert a.shape == b.shape
    assert np.abs(a - b).mean() < 0.05 * (a.max() - a.min()), (np.abs(a - b).mean(), np.ptp(a))


def _pad_input(bgr: np.ndarray) -> np.ndarray:
    img, _ = seg_input(bgr, 8.0)
    h, w = img.shape[:2]
    pad = cv2.copyMakeBorder(img, 0, (-h) % 8, 0, (-w) % 8, cv2.BORDER_REPLICATE)
    return pad.transpose(2, 0, 1)[None].astype(np.float32)


needs_model = pytest.mark.skipif(not DEFAULT_SEG_MODEL.is_file(), reason="no exported/seg.onnx")


@needs_model
@pytest.mark.parametrize("seed,style", [(11, "clean"), (12, "scan"), (13, "rough")])
def test_the_shipped_net_finds_the_strokes_of_a_rendered_page(seed, style):
    """Pages rendered from the bundled records (not the net's training split's pages): the
    strokes it marks are the pen's, and it misses few of them."""
    from trainer.seg_data import stroke_mask
    page = _page(seed, style)
    seg = Segmenter(DEFAULT_SEG_MODEL)
    p, scale = seg.probability(page.image, page.meta["px_per_mm"])
    truth = stroke_mask(page, scale, p.shape)
    prec, rec = _f1((p > 0.5).astype(np.uint8), truth)
    assert prec > 0.8 and rec > 0.8, (prec, rec)


def test_the_net_is_on_unless_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("DIGITIZE_SEG_MODEL", "none")
    assert segmenter() is None
    monkeypatch.setenv("DIGITIZE_SEG_MODEL", str(tmp_path / "missing.onnx"))
    with pytest.raises(RuntimeError, match="no such file"):
        segmenter()


@needs_model
def test_shipped_net_by_default(monkeypatch):
    monkeypatch.delenv("DIGITIZE_SEG_MODEL", raising=False)
    assert isinstance(segmenter(), Segmenter)
    monkeypatch.setenv("DIGITIZE_SEG_MODEL", "shipped")
    assert isinstance(segmenter(), Segmenter)


@needs_model
def test_the_net_runs_with_the_cli_device_and_threads(monkeypatch):
    from digitize import segment
    monkeypatch.setenv("DIGITIZE_SEG_MODEL", "shipped")
    monkeypatch.setattr(segment, "_session", {"device": "cpu", "threads": 1})
    seg = segmenter()
    assert seg.session.get_providers() == ["CPUExecutionProvider"]
    assert seg.session.get_session_options().intra_op_num_threads == 1
    segment.configure("cpu", 2)  # other settings: another session
    assert segmenter() is not seg
    with pytest.raises(Exception, match="unknown device"):
        Segmenter(DEFAULT_SEG_MODEL, device="tpu")


def _trace(mask, y, x0, x1, gap=None):
    xs = np.arange(x0, x1)
    ys = (y + 6 * np.sin(xs / 9.0)).astype(np.int32)
    for a, b, ya, yb in zip(xs[:-1], xs[1:], ys[:-1], ys[1:]):
        if gap is None or not gap[0] <= a < gap[1]:
            cv2.line(mask, (int(a), int(ya)), (int(b), int(yb)), 1, 2)


def test_rows_are_the_nets_each_read_from_the_filtered_page_where_it_has_one():
    from digitize.page.analyse import _find_rows
    k, w = 4.0, 1100
    net = np.zeros((520, w), np.uint8)  # the net: four rows, the third broken by a stain
    for y in (100, 200, 300, 400):
        _trace(net, y, 50, 1050, gap=(500, 560) if y == 300 else None)
    page = np.zeros_like(net)  # the filtered page: rows 1, 2, 4 (other extents), no row 3,
    _trace(page, 102, 60, 1040)  # and a shadow's band across the page between rows 2 and 3
    _trace(page, 198, 40, 1060)
    _trace(page, 401, 50, 1050)
    page[246:254, :] = 1
    rows = _find_rows(page, net, k)
    assert len(rows) == 4
    assert all(abs(r.y - y) < 2 * k for r, y in zip(rows, (102, 198, 300, 401))), rows
    assert abs(rows[0].x_left - 60) <= 3 and abs(rows[1].x_left - 40) <= 3  # the page's rows
    assert abs(rows[2].x_left - 50) <= 3 and abs(rows[2].x_right - 1050) <= 3  # the net's
    # without the net: the shadow is a row and the third row is missing
    assert [abs(r.y - 250) < 2 * k for r in _find_rows(page, None, k)] == [0, 0, 1, 0]


def test_a_missing_page_net_stops_the_run_with_one_line(tmp_path):
    import os
    import subprocess
    import sys
    env = dict(os.environ, DIGITIZE_SEG_MODEL=str(tmp_path / "nope.onnx"))
    r = subprocess.run([sys.executable, "-m", "digitize", "examples", "--out", str(tmp_path / "o")],
                       cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and "nope.onnx: no such file" in r.stderr, r.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def _binarised_page(pen_px: int) -> np.ndarray:
    """A 200-dpi page printed black on white: a black 1-mm grid (5-mm lines doubled) and four
    rows of spiky trace drawn with a ``pen_px`` pen."""
    k = 200 / 25.4
    h, w = 1700, 2200
    img = np.full((h, w), 255, np.uint8)
    for i in range(int(w / k) + 1):
        x = int(round(i * k))
        img[:, x:x + (2 if i % 5 == 0 else 1)] = 0
    for i in range(int(h / k) + 1):
        y = int(round(i * k))
        img[y:y + (2 if i % 5 == 0 else 1), :] = 0
    xs = np.arange(150, 150 + int(250 * k))
    t = (xs - 150) / k / 25.0
    for y0 in (400, 700, 1000, 1300):
        ys = y0 - 8 * k * np.maximum(0, 1 - np.abs(((t % 0.8) - 0.3) / 0.03)) \
            + 0.5 * k * np.sin(2 * np.pi * t)
        cv2.polylines(img, [np.stack([xs, ys], 1).astype(np.int32)], False, 0, pen_px,
                      cv2.LINE_AA)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


@needs_model
def test_a_filtered_page_that_lost_the_pens_strokes_is_not_read(monkeypatch):
    """A pen wider than the grid filter's black-hat, as black as a scanner's border (own val
    00523_6x2_scan), leaves the filtered page with grid rubble only: that reading is refused
    (the page is read another way); a fine pen on the same grid is read through the filter."""
    from digitize.page.analyse import analyse
    from digitize.page.core import PageError
    monkeypatch.delenv("DIGITIZE_SEG_MODEL", raising=False)
    with pytest.raises(PageError, match="took out the pen's strokes"):
        analyse(_binarised_page(9), None, degrid=True)
    g = analyse(_binarised_page(2), None, degrid=True)
    assert len(g.rows) == 4 and abs(g.px_per_mm - 200 / 25.4) < 0.05
