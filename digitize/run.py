"""Batch conversion: inputs → WFDB records, quality files, results, manifest and summary.

Output layout under ``--out``::

    <name>.hea/.dat          the record (the .hea is written last: it marks the record done)
    <name>.quality.json      per-lead quality and the page's geometry
    <name>.overlay.png       with --overlay: the reconstruction drawn over the input
    results[-K-of-N].jsonl   one line per page or failed input, streamed
    quality.csv, manifest.csv, summary[-K-of-N].json   rebuilt at the end of a run
    .tmp/                    files being written (renamed into place when complete)
"""
from __future__ import annotations

import collections
import csv
import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import click
import cv2
import numpy as np

from digitize import __version__
from digitize.engine import file_sha256
from digitize.io import DigitizeError, InputItem, load_pages
from digitize.leads import LEADS
from digitize.page import PageError
from digitize.pipeline import Options, PageResult, convert_page
from digitize.wfdb_writer import write_record

log = logging.getLogger("digitize")
TMP = ".tmp"


@dataclass
class RunConfig:
    out: Path
    options: Options
    overwrite: bool = False
    overlay: bool = False
    reference: Path | None = None
    anonymize: bool = False
    fail_fast: bool = False
    shard: tuple[int, int] = (0, 1)
    progress: bool = True
    workers: int = 1  # pages converted at once (threads sharing the one model session)


@dataclass
class Totals:
    inputs: int = 0
    pages: int = 0
    converted: int = 0
    skipped: int = 0
    failed: int = 0
    status: dict = field(default_factory=lambda: {"ok": 0, "warn": 0, "fail": 0})


_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def record_names(items: list[InputItem]) -> dict[Path, str]:
    """Base record name per input: its path relative to its input root, sanitised for WFDB
    (letters, digits, '_' and '-'); names that collide get a short hash of the path — never a
    counter, so the same input gets the same name in every run and every shard."""
    base = {}
    for it in items:
        rel = it.rel.with_suffix("")
        s = _SAFE.sub("_", "__".join(rel.parts)).strip("_") or "record"
        base[it.path] = s[:120]
    count: dict[str, int] = {}
    for s in base.values():
        count[s.lower()] = count.get(s.lower(), 0) + 1
    for p, s in base.items():
        if count[s.lower()] > 1:
            base[p] = f"{s}_{hashlib.sha1(str(p).encode()).hexdigest()[:8]}"
    return base


def _atomic_write(path: Path, data: bytes, tmp_dir: Path) -> None:
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{path.name}.tmp{os.getpid()}"
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _header_comments(path: Path) -> dict[str, str]:
    out = {}
    try:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("#") and ":" in line:
                k, v = line[1:].split(":", 1)
                out[k.strip()] = v.strip()
    except OSError:
        pass
    return out


def is_done(out: Path, name: str, model_sha: str, opts_key: str) -> bool:
    hea = out / f"{name}.hea"
    if not hea.is_file():
        return False
    c = _header_comments(hea)
    return c.get("model_sha256") == model_sha and c.get("options") == opts_key


def draw_overlay(bgr: np.ndarray, res: PageResult) -> np.ndarray:
    """The reconstructed traces (per model column) drawn over the input page."""
    img = bgr.copy()
    thick = max(1, int(round(res.geometry.px_per_mm * 0.25)))
    for r in res.windows:
        g = r.window.geom
        spec_kx = len(r.value_mm) / g.width_mm
        # the columns the record keeps (window ends the model was unsure of, or read at the
        # strip's edge, are NaN there)
        if r.kept is None:
            continue
        cols = np.arange(r.kept[0], r.kept[1] + 1)
        w = r.window  # nor past the row's ink end
        cols = cols[w.t0 + cols / spec_kx / w.speed <= w.t_ink_end]
        if not len(cols):
            continue
        x_mm = g.x0_mm + cols / spec_kx
        y_mm = g.centre_mm - np.asarray(r.value_mm, np.float64)[cols]
        pts = np.stack([x_mm * g.px_per_mm, y_mm * g.px_per_mm, np.ones_like(x_mm)])
        q = np.asarray(g.page_to_image) @ pts
        xy = (q[:2] / q[2]).T
        cv2.polylines(img, [np.round(xy * 4).astype(np.int32)], False, (255, 80, 0), thick,
                      cv2.LINE_AA, shift=2)
    return img


class Runner:
    def __init__(self, cfg: RunConfig, engine):
        self.cfg = cfg
        self.engine = engine
        self.out = cfg.out
        self.tmp = cfg.out / TMP
        k, n = cfg.shard
        suffix = f"-{k}-of-{n}" if n > 1 else ""
        self.results_path = self.out / f"results{suffix}.jsonl"
        self.summary_path = self.out / f"summary{suffix}.json"
        self.totals = Totals()
        self.opts_key = cfg.options.key()

    # ---- one page
    def _write_page(self, name: str, item: InputItem, page: int, bgr: np.ndarray,
                    src_sha: str) -> dict:
        t0 = time.perf_counter()
        res = convert_page(bgr, self.engine, self.cfg.options)
        t_model = time.perf_counter() - t0
        g = res.geometry
        source = f"sha256:{src_sha}" if self.cfg.anonymize else str(item.path)
        info = dict(px_per_mm=round(g.px_per_mm, 4), scale_source=g.scale_source,
                    skew_deg=round(g.skew_deg, 3), layout=res.layout, gain_mm_mv=res.gain,
                    **({} if res.chest_gain is None else {"chest_gain_mm_mv": res.chest_gain}),
                    rows=len(g.rows), rectified=g.rectified, warnings=res.warnings)
        quality = dict(record=name, source=source, page=page, **info,
                       model_sha256=self.engine.sha256, quality=res.quality)
        if self.cfg.reference is not None:
            quality["reference"] = self._score(name, res)
        self.tmp.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.out / f"{name}.quality.json",
                      dumps(quality, indent=1).encode(), self.tmp)
        if self.cfg.overlay:
            ok, buf = cv2.imencode(".png", draw_overlay(bgr, res))
            if ok:
                _atomic_write(self.out / f"{name}.overlay.png", buf.tobytes(), self.tmp)
        comments = [f"source: {source}", f"page: {page}", f"layout: {res.layout}",
                    f"px_per_mm: {g.px_per_mm:.4f}", f"skew_deg: {g.skew_deg:.3f}",
                    f"gain_mm_mv: {res.gain:g}"
                    + ("" if res.chest_gain is None else f" (chest {res.chest_gain:g})"),
                    f"speed_mm_s: {self.cfg.options.speed:g}",
                    f"quality: {res.quality['status']}", f"digitize: {__version__}",
                    f"model_sha256: {self.engine.sha256}", f"options: {self.opts_key}"]
        clipped = write_record(self.out, name, res.signal, self.cfg.options.fs, LEADS,
                               comments=comments, tmp_dir=self.tmp)
        return dict(status=res.quality["status"], record=name, clipped_samples=int(clipped),
                    seconds=round(time.perf_counter() - t0, 3),
                    model_seconds=round(t_model, 3), **info,
                    **({"reference": quality["reference"]} if "reference" in quality else {}))

    def _score(self, name: str, res: PageResult) -> dict | None:
        from digitize.metrics import resample_to, score_record
        ref_path = self.cfg.reference / name
        if not ref_path.with_suffix(".hea").is_file():
            return None
        import wfdb
        rec = wfdb.rdrecord(str(ref_path))
        ref = np.full((rec.sig_len, len(LEADS)), np.nan)
        for j, nm in enumerate(rec.sig_name):
            from digitize.leads import normalize_lead_name
            lead = normalize_lead_name(nm)
            if lead in LEADS:
                ref[:, LEADS.index(lead)] = rec.p_signal[:, j]
        est = np.stack([resample_to(res.signal[:, j], self.cfg.options.fs, rec.fs, rec.sig_len)
                        for j in range(len(LEADS))], axis=1)
        snr, leads = score_record(ref, est, rec.fs)
        return dict(snr_db=snr, leads={LEADS[j]: (s.to_json() if s else None)
                                       for j, s in enumerate(leads)})

    # ---- the batch
    def run(self, items: list[InputItem], names: dict[Path, str]) -> Totals:
        from tqdm import tqdm
        self.out.mkdir(parents=True, exist_ok=True)
        self.totals.inputs = len(items)
        t_start = time.perf_counter()
        q: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()

        def producer():  # decode/rasterise ahead of the model
            for it in items:
                if stop.is_set():
                    break
                base = names[it.path]
                try:
                    if self._skip(it, base):
                        q.put(("skip", it, None, None))
                        continue
                    sha = file_sha256(it.path) if it.path.is_file() else ""
                    for page, img in load_pages(it):
                        q.put(("page", it, (page, sha), img))
                        if stop.is_set():
                            break
                except DigitizeError as exc:
                    q.put(("error", it, None, str(exc)))
                except Exception as exc:  # noqa: BLE001 - a decoder bug must not stop the batch
                    q.put(("error", it, None, f"cannot load: {type(exc).__name__}: {exc}"))
                q.put(("end", it, None, None))
            q.put(None)

        th = threading.Thread(target=producer, daemon=True)
        th.start()
        bar = tqdm(total=len(items), unit="input", disable=not self.cfg.progress, file=None,
                   dynamic_ncols=True)
        # pages convert on up to `workers` threads at once (the model session, OpenCV and
        # numpy release the GIL): page analysis overlaps the model. Messages are handled in
        # input order, so results.jsonl, the totals and the progress bar read as one thread's.
        workers = max(1, self.cfg.workers)
        pool = ThreadPoolExecutor(workers, thread_name_prefix="digitize-page")
        pending: collections.deque = collections.deque()  # (message, Future | None)
        in_flight = 0
        failed_item = False

        def convert(it: InputItem, meta, img) -> dict:
            page, sha = meta
            name = self._page_name(it, names[it.path], page)
            try:
                return dict(line=self._write_page(name, it, page, img, sha))
            except (PageError, DigitizeError) as exc:
                return dict(reason=str(exc))
            except Exception as exc:  # noqa: BLE001
                log.debug("internal error on %s", it.path, exc_info=True)
                return dict(reason=f"internal error: {type(exc).__name__}: {exc}")

        def handle(msg, fut) -> bool:
            """One message, in input order; True when it is a failure."""
            kind, it, meta, payload = msg
            if kind == "end":
                bar.update(1)
                dt = time.perf_counter() - t_start
                bar.set_postfix(pages_s=f"{self.totals.pages / dt:.2f}" if dt else "")
                return False
            if kind == "skip":
                self.totals.skipped += 1
                self._emit(results, dict(input=self._src(it), status="skipped",
                                         record=names[it.path], reason="already done"))
                return False
            if kind == "error":
                self._fail(results, it, payload)
                return True
            page = meta[0]
            self.totals.pages += 1
            done = fut.result()
            if "reason" in done:
                self._fail(results, it, done["reason"], page)
                return True
            line = done["line"]
            self.totals.converted += 1
            self.totals.status[line["status"]] += 1
            self._emit(results, dict(input=self._src(it), page=page, **line))
            return False

        def handle_head() -> None:
            nonlocal in_flight, failed_item
            msg, fut = pending.popleft()
            if fut is not None:
                in_flight -= 1
            failed_item |= handle(msg, fut)

        try:
            with open(self.results_path, "a", encoding="utf-8") as results:
                while True:
                    msg = q.get()
                    if msg is None:
                        break
                    fut = None
                    if msg[0] == "page":
                        while in_flight >= workers:  # memory stays flat: so many pages
                            handle_head()
                    stopping = failed_item and self.cfg.fail_fast
                    if msg[0] == "page" and not stopping:
                        fut = pool.submit(convert, msg[1], msg[2], msg[3])
                        in_flight += 1
                    if not stopping:
                        pending.append((msg, fut))
                    while pending and (pending[0][1] is None or pending[0][1].done()):
                        handle_head()
                    if failed_item and self.cfg.fail_fast:
                        stop.set()
                        while pending:  # pages already converting are finished and reported
                            handle_head()
                        while q.get() is not None:  # drain so the producer can finish
                            pass
                        break
                while pending:
                    handle_head()
        finally:
            pool.shutdown(wait=True)
        bar.close()
        th.join(timeout=5)
        self.elapsed = time.perf_counter() - t_start
        self.finish()
        return self.totals

    def _page_name(self, it: InputItem, base: str, page: int) -> str:
        if self.cfg.anonymize:
            base = self._anon_name(it)
        return f"{base}_p{page}" if it.is_pdf else base

    def _anon_name(self, it: InputItem) -> str:
        return "ecg_" + file_sha256(it.path)[:16]

    def _skip(self, it: InputItem, base: str) -> bool:
        if self.cfg.overwrite or it.is_pdf or not it.path.is_file():
            return False  # PDFs: page count unknown until opened; always redone
        name = self._anon_name(it) if self.cfg.anonymize else base
        return is_done(self.out, name, self.engine.sha256, self.opts_key)

    def _src(self, it: InputItem) -> str:
        if self.cfg.anonymize:
            try:
                return "sha256:" + file_sha256(it.path)
            except OSError:
                return "sha256:unreadable"
        return str(it.path)

    def _fail(self, results, it: InputItem, reason: str, page: int | None = None) -> None:
        self.totals.failed += 1
        where = f"{self._src(it)}" + (f" page {page}" if page else "")
        # always shown, -q included: one line naming the file
        click.echo(f"digitize: error: {where}: {reason}", err=True)
        self._emit(results, dict(input=self._src(it), page=page, status="error", reason=reason))

    @staticmethod
    def _emit(fh, obj: dict) -> None:
        fh.write(dumps(obj) + "\n")
        fh.flush()

    # ---- end of run
    def finish(self) -> None:
        rows = {}
        for path in sorted(self.out.glob("results*.jsonl")):
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        r = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut by a killed run
                    if r.get("record"):
                        rows[r["record"]] = r
        quality_rows, manifest_rows = [], []
        for name in sorted(rows):
            qp = self.out / f"{name}.quality.json"
            if not (self.out / f"{name}.hea").is_file() or not qp.is_file():
                continue
            qd = json.loads(qp.read_text())
            manifest_rows.append(dict(record=name, source=qd["source"], page=qd["page"],
                                      layout=qd["layout"], status=qd["quality"]["status"]))
            for lead, lq in qd["quality"]["leads"].items():
                quality_rows.append(dict(record=name, lead=lead, status=lq["status"],
                                         confidence=round(lq["confidence"], 4),
                                         low_confidence_fraction=round(
                                             lq["low_confidence_fraction"], 4),
                                         heart_rate_bpm=_r(lq["heart_rate_bpm"]),
                                         flat_fraction=round(lq["flat_fraction"], 4),
                                         clipped_fraction=round(lq["clipped_fraction"], 4),
                                         amplitude_mv=round(lq["amplitude_mv"], 4),
                                         stray_fraction=_r(lq.get("stray_fraction"), 4),
                                         reasons="; ".join(lq["reasons"])))
        self._csv(self.out / "quality.csv", quality_rows,
                  ["record", "lead", "status", "confidence", "low_confidence_fraction",
                   "heart_rate_bpm", "flat_fraction", "clipped_fraction", "amplitude_mv",
                   "stray_fraction", "reasons"])
        self._csv(self.out / "manifest.csv", manifest_rows,
                  ["record", "source", "page", "layout", "status"])
        t = self.totals
        summary = dict(version=__version__, inputs=t.inputs, pages=t.pages,
                       converted=t.converted, skipped=t.skipped, failed=t.failed,
                       quality=t.status, provider=self.engine.provider,
                       workers=max(1, self.cfg.workers),
                       model=str(self.engine.path), model_sha256=self.engine.sha256,
                       options=self.opts_key, shard=f"{self.cfg.shard[0]}/{self.cfg.shard[1]}",
                       seconds=round(self.elapsed, 2),
                       pages_per_s=round(t.pages / self.elapsed, 3) if self.elapsed else None)
        _atomic_write(self.summary_path, dumps(summary, indent=1).encode(), self.tmp)
        self.summary = summary

    def _csv(self, path: Path, rows: list[dict], cols: list[str]) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / f"{path.name}.tmp{os.getpid()}"
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, path)


def _r(x: float | None, digits: int = 2) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), digits)


def _finite(o):
    """Strict JSON: NaN/inf (a heart rate that could not be measured...) become null."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, np.integer):
        return int(o)
    return o


def dumps(o, **kw) -> str:
    return json.dumps(_finite(o), default=_json_default, allow_nan=False, **kw)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)
