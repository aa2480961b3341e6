"""report.html (issue #18): written by every run over the whole output folder, self-contained,
and used for real in headless Chromium (Debian's chromium + chromium-driver, driven by
selenium): it renders without console errors, filters by status, and its page view plots the
record. Skips, saying why, where no browser is installed.

Set DIGITIZE_SCREENSHOTS=<folder> to keep the screenshots for a look.
"""
import base64
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO
from digitize.cli import main

PAGES = REPO / "examples" / "pages"
CLEAN = PAGES / "00000_00008_3x4p1_clean.png"
STRIP = PAGES / "00000_00008_strip_clean.png"


def cli(args):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    src = tmp_path_factory.mktemp("in")
    shutil.copy(CLEAN, src / CLEAN.name)
    shutil.copy(STRIP, src / STRIP.name)
    shutil.copy(CLEAN, src / "copy.png")
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path_factory.mktemp("out")
    # two runs: the report must describe the whole folder, not the last run
    assert cli([src / CLEAN.name, "--out", out, "--reference", PAGES, "-q"])[0] == 0
    code, stdout, _ = cli([src, "--out", out, "--reference", PAGES, "--overlay"])
    assert code == 1 and "report.html" in stdout
    return src, out


def embedded(out: Path) -> dict:
    text = (out / "report.html").read_text()
    m = re.search(r'<script id="report-data" type="application/json">(.*?)</script>', text, re.S)
    return json.loads(m.group(1))


def test_report_describes_the_whole_folder(folder):
    src, out = folder
    data = embedded(out)
    names = sorted(r["name"] for r in data["rows"])
    assert names == sorted([CLEAN.stem, STRIP.stem, "copy"])
    assert [f["input"].endswith("broken.jpg") for f in data["failed"]] == [True]
    row = next(r for r in data["rows"] if r["name"] == CLEAN.stem)
    assert row["layout"] == "3x4+1" and set(row["leads"]) == {
        "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"}
    assert row["snr"] > 10 and row["thumb"]  # the first run's record has its pictures too
    assert data["summary"]["folder"]["records"] == 3


def test_report_is_self_contained(folder):
    _, out = folder
    text = (out / "report.html").read_text()
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', text)  # no network, no CDN
    assert "<script src" not in text and "<link" not in text
    for name in (CLEAN.stem, STRIP.stem, "copy"):
        assert (out / "report" / "thumbs" / f"{name}.jpg").is_file()
        js = (out / "report" / "data" / f"{name}.js").read_text()
        assert js.startswith("window.ecgSignal(")


def test_signal_file_is_the_record(folder):
    """The page view plots what was written to WFDB (at 250 Hz)."""
    import wfdb
    _, out = folder
    js = (out / "report" / "data" / f"{CLEAN.stem}.js").read_text()
    payload = json.loads(js[js.index(",") + 1:js.rindex(")")])
    v = np.frombuffer(base64.b64decode(payload["data"]), "<i2").reshape(12, payload["n"])
    rec = wfdb.rdrecord(str(out / CLEAN.stem))
    ii = rec.p_signal[:, rec.sig_name.index("II")]
    expect = ii[: len(ii) // 2 * 2].reshape(-1, 2).mean(axis=1) * 1000
    assert payload["fs"] == 250 and np.abs(v[1] - expect).max() <= 1.0


def test_no_report_and_anonymize(tmp_path):
    out = tmp_path / "a"
    assert cli([STRIP, "--out", out, "--no-report", "-q"])[0] == 0
    assert not (out / "report.html").exists() and not (out / "report").exists()
    out = tmp_path / "b"
    assert cli([CLEAN, "--out", out, "--anonymize", "--overlay", "-q"])[0] == 0
    data = embedded(out)
    assert data["anonymized"] and "blurred" in (out / "report.html").read_text()
    # the header (patient name and ID on a printout) is blurred: no sharp text edges there
    import cv2
    page = cv2.imread(str(CLEAN), cv2.IMREAD_GRAYSCALE)
    name = data["rows"][0]["name"]
    ov = cv2.imread(str(out / f"{name}.overlay.png"), cv2.IMREAD_GRAYSCALE)
    header = (slice(0, 60), slice(0, 600))
    assert cv2.Laplacian(page[header], cv2.CV_32F).var() > \
        20 * cv2.Laplacian(ov[header], cv2.CV_32F).var()


# ---- in a real browser

def _browser_reason() -> str | None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return "no chromium/chromedriver (Debian: apt install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed"
    return None


BROWSER = _browser_reason()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if BROWSER:
        pytest.skip(BROWSER)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1400,1000",
              f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    yield driver
    driver.quit()


def _shot(driver, tmp_path, name):
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    keep = os.environ.get("DIGITIZE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path


def test_report_in_a_real_browser(folder, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    _, out = folder
    d = browser
    d.get((out / "report.html").as_uri())
    WebDriverWait(d, 20).until(lambda x: x.find_elements(By.CSS_SELECTOR, "#tbody tr"))
    assert _shot(d, tmp_path, "report-list").stat().st_size > 10_000
    rows = d.find_elements(By.CSS_SELECTOR, "#tbody tr")
    assert len(rows) == 4  # three records and the failed input
    # filtering by status shows exactly the rows of that status
    statuses = {r["name"]: r["status"] for r in embedded(out)["rows"]}
    for status in ("warn", "ok", "error"):
        Select(d.find_element(By.ID, "f-status")).select_by_visible_text(status)
        shown = d.find_elements(By.CSS_SELECTOR, "#tbody tr")
        want = (sum(v == status for v in statuses.values()) if status != "error" else 1)
        assert len(shown) == want
        assert all(tr.get_attribute("data-status") == status for tr in shown)
    Select(d.find_element(By.ID, "f-status")).select_by_visible_text("all")
    # the page view: the overlay beside the record's plot
    d.find_element(By.CSS_SELECTOR, f'#tbody tr[data-name="{CLEAN.stem}"]').click()
    WebDriverWait(d, 20).until(
        lambda x: x.find_element(By.ID, "plot").get_attribute("data-plotted") == CLEAN.stem)
    ink = d.execute_script("""
        const c = document.getElementById('plot'), g = c.getContext('2d');
        const p = g.getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < p.length; i += 4) if (p[i] < 80 && p[i+1] < 80 && p[i+2] < 80) n++;
        return n;""")
    assert ink > 2000  # twelve leads and a rhythm strip drawn
    img_ok = d.execute_script("const i = document.getElementById('v-img');"
                              "return i.complete && i.naturalWidth > 0 && i.src;")
    assert img_ok and img_ok.endswith(".overlay.png")
    _shot(d, tmp_path, "report-page-view")
    # keyboard: a verdict, then the next warn page
    from selenium.webdriver.common.keys import Keys
    body = d.find_element(By.TAG_NAME, "body")
    body.send_keys("a")
    assert d.find_element(By.ID, "v-verdict").text == "accept"
    body.send_keys("n")
    assert d.find_element(By.ID, "v-status").text == "warn"
    body.send_keys(Keys.ESCAPE)
    assert d.find_element(By.ID, "list").is_displayed()
    # review.csv carries the verdict
    d.find_element(By.ID, "download").click()
    csv = d.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(document.getElementById('download').href).then(r => r.text()).then(done);""")
    lines = csv.strip().splitlines()
    assert lines[0] == "record,source,status,verdict" and len(lines) == 4
    assert any(CLEAN.stem in x and '"accept"' in x for x in lines)
    severe = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
