"""What report.html costs: a run over N pages with and without it, and how fast a report of
10,000 pages opens in headless Chromium.

1. N (default 1000) clean 200-dpi 3x4 pages from the test split are rendered once; `digitize`
   runs over them as a user runs it (subprocess, shipped model, --device cpu) with
   `--no-report`, then with the report (default), each into an empty folder. The difference is
   what the thumbnails, signal files and the report page add (target: <= 5 %).
2. A report of 10,000 rows is built from synthetic rows (the same fields a real run writes) and
   opened in Chromium: the time from navigation start to the first table page drawn
   (`window.reportReady`), and the HTML's size.

    ECG_DATA_DIR=../shared/data python benchmarks/report_speed.py --pages 1000
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from digitize_speed import render, timed_run  # noqa: E402


def run_overhead(n: int, out: Path, ptbxl: str, chunks: int = 4) -> None:
    """The two variants take turns on quarters of the pages (so a change in the machine's load
    falls on both alike), each into its own folder; summed per variant. The report variant
    rebuilds its report after each quarter over the folder so far (250, 500, 750, 1000
    records): a little more than one run would do."""
    pages = out / f"3x4-{n}"
    if not pages.is_dir():
        render(pages, "3x4", n, ptbxl)
    files = sorted(pages.glob("*.png"))
    parts = []
    for k in range(chunks):
        part = out / f"3x4-{n}-part{k}"
        if not part.is_dir():
            part.mkdir()
            for f in files[k::chunks]:
                os.link(f, part / f.name)
        parts.append(part)
    times = {"--no-report": 0.0, "report": 0.0}
    rss = {}
    recs = {label: out / f"rec-report-{label.strip('-')}" for label in times}
    for rec in recs.values():
        shutil.rmtree(rec, ignore_errors=True)
    for part in parts:
        for label in times:
            dt, r = timed_run(part, recs[label], ["--no-report"] if label == "--no-report" else [])
            times[label] += dt
            rss[label] = max(rss.get(label, 0), r)
    for label, dt in times.items():
        rec = recs[label]
        size = sum(p.stat().st_size for p in (rec / "report").rglob("*") if p.is_file()) \
            if (rec / "report").is_dir() else 0
        html = (rec / "report.html").stat().st_size if (rec / "report.html").exists() else 0
        print(f"{label:12s} {n} pages ({chunks} runs): {dt:7.1f} s  {n / dt:5.2f} pages/s  "
              f"peak RSS {rss[label]:5.0f} MiB  report.html {html / 2**20:.2f} MiB, report/ "
              f"{size / 2**20:.1f} MiB")
    extra = times["report"] / times["--no-report"] - 1
    print(f"the report adds {100 * extra:+.1f} % to the run (target <= 5 %)")


def open_time(rows: int, out: Path) -> None:
    from digitize.report import write_report
    leads = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    fake = [dict(name=f"rec{i:05d}", source=f"/archive/scans/{i // 100:03d}/rec{i:05d}.png",
                 page=1, status=("ok", "warn", "fail")[i % 3], reasons="",
                 layout="3x4+1", gain=10.0, chest_gain=None, px_per_mm=7.87, fit=0.05,
                 warnings=[], leads={x: ["ok", ""] for x in leads}, snr=20.0 + i % 7,
                 overlay=False, thumb=False) for i in range(rows)]
    summary = dict(folder=dict(records=rows, ok=rows // 3, warn=rows // 3, fail=rows // 3,
                               failed_inputs=0), run={}, provider="CPU", model="m",
                   model_sha256="0" * 64, options="")
    d = out / "report-10k"
    d.mkdir(parents=True, exist_ok=True)
    (d / "report.html").write_bytes(write_report(d, fake, [], summary, False))
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run",
              f"--user-data-dir={out / 'chromium-profile'}"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        ms = []
        for _ in range(3):
            drv.get((d / "report.html").as_uri())
            ms.append(drv.execute_script("return window.reportReady"))
        shown = len(drv.find_elements("css selector", "#tbody tr"))
    finally:
        drv.quit()
    size = (d / "report.html").stat().st_size / 2**20
    print(f"report of {rows} rows: {size:.1f} MiB; opened in {min(ms):.0f} ms (best of 3; "
          f"navigation start to the first table page drawn, {shown} rows per page)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--out", default="runs/report_speed")
    ap.add_argument("--skip-run", action="store_true")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}")
    if shutil.which("chromium") and shutil.which("chromedriver"):
        open_time(args.rows, out)
    else:
        print("no chromium/chromedriver: open time not measured")
    if not args.skip_run:
        from trainer.data import default_ptbxl_dir
        run_overhead(args.pages, out, str(default_ptbxl_dir()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
