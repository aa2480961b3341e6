"""Batch conversion: inputs → WFDB records, quality files, results, manifest and summary.

Output layout under ``--out``::

    <name>.hea/.dat          the record (the .hea is renamed into place last: it marks the
                             record done)
    <name>.quality.json      per-lead quality, the page's geometry and its lead windows
    <name>.overlay.png       with --overlay: the record drawn over the input
    results[-K-of-N].jsonl   one line per page or failed input, streamed
    quality.csv, manifest.csv, summary[-K-of-N].json   rebuilt at the end of a run, over the
                             whole output folder (summary.json: the folder, and this run)
    report.html, report/     the review page (digitize.report), rebuilt at the end of a run
    .digitize-output         marks the folder as digitize output (never read as input)
    .tmp/                    files being written (renamed into place when complete)

A page's files are all written to ``.tmp/`` first and renamed into place together, the
``.hea`` last: a page that fails, a full disk or a signal leave nothing of it behind.

Library code: nothing here prints. ``Runner`` reports what happens through its ``events``
callback (``failed``, ``progress``, ``note``); the CLI decides what to show.
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
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from digitize import __version__
from digitize.engine import file_sha256
from digitize.evidence import NotEcg
from digitize.files import (MARKER, TMP, atomic_write, is_disk_full, remove_own, remove_stale,
                            tmp_path)
from digitize.io import DigitizeError, InputItem, load_pages
from digitize.leads import LEADS
from digitize.notes import codes, texts
from digitize.orientation import oriented
from digitize.overlay import blur_outside, draw_overlay, window_records
from digitize.report import (REPORT_DIR, has_report_files, page_row, report_files,
                             write_report)
from digitize.page import PageError
from digitize.pipeline import Options, convert_page
from digitize.wfdb_writer import encode_record

log = logging.getLogger(__name__)


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
    workers: int = 1  # pages converted at once (threads sharing the one model session)
    report: bool = True  # report.html and its report/ assets
    strict: bool = False  # a page that is no ECG counts as a failed input


@dataclass
class Totals:
    """This run's own figures."""
    inputs: int = 0
    pages: int = 0
    converted: int = 0
    skipped: int = 0
    completed: int = 0  # done records given what this run's options add (overlay, scores)
    duplicates: int = 0  # --anonymize: byte-identical to an input already converted
    failed: int = 0
    not_ecg: int = 0  # pages that show no ECG (cover sheets, letters...): no record
    status: dict = field(default_factory=lambda: {"ok": 0, "warn": 0, "fail": 0})


class DiskFull(Exception):
    """The output disk takes no more: the batch stops (every later page would fail too)."""


_SAFE = re.compile(r"[^A-Za-z0-9_-]+")
#: Longest record name kept whole (WFDB tools handle long names, file systems 255 bytes).
MAX_NAME = 100


def record_name(rel: Path) -> str:
    """A record's name, from its input's path relative to the input folder alone — the same
    in every run and every shard, whatever else the folder holds.

    The path without its extension, folders joined by ``__``, letters transliterated to ASCII
    (é → e). Where that is not the path itself — characters replaced or dropped (spaces,
    punctuation, letters with no ASCII form: a file name left empty becomes ``record``), a
    ``__`` inside a folder or file name, or a name cut to ``MAX_NAME`` characters — ``_`` and 8 hex digits of the path's SHA-1 follow, so no two
    paths share a name unless they differ only in their extension or in letter case.
    """
    parts = rel.with_suffix("").parts
    ascii_parts = [unicodedata.normalize("NFKD", p).encode("ascii", "ignore").decode()
                   for p in parts]
    safe = [_SAFE.sub("_", p).strip("_") for p in ascii_parts]
    lossy = safe != list(parts) or any("__" in p for p in parts)
    if safe and not safe[-1]:
        safe[-1] = "record"  # a file name with no ASCII form (e.g. 心電図.png)
    name = "__".join(x for x in safe if x) or "record"
    lossy |= len(name) > MAX_NAME
    if lossy:
        digest = hashlib.sha1(rel.as_posix().encode("utf-8")).hexdigest()[:8]
        name = f"{name[:MAX_NAME]}_{digest}"
    return name


def record_names(items: list[InputItem]) -> dict[Path, str]:
    """Base record name per input (``record_name`` of its relative path)."""
    return {it.path: record_name(it.rel) for it in items}


def name_conflicts(items: list[InputItem], names: dict[Path, str], out: Path
                   ) -> dict[Path, str]:
    """Inputs that cannot have their record: another input has the same name (paths that
    differ only in extension or letter case). The record stays with the input it was
    written from (its header's source), else with the first in sorted order; the others get
    a reason naming the owner."""
    groups: dict[str, list[InputItem]] = {}
    for it in items:
        if not it.is_pdf:
            groups.setdefault(names[it.path].lower(), []).append(it)
        else:  # a PDF's records are <name>_p<N>
            groups.setdefault(names[it.path].lower() + "_p*", []).append(it)
    out_conflicts = {}
    for group in groups.values():
        if len(group) < 2:
            continue
        name = names[group[0].path]
        written = _header_comments(out / f"{name}.hea").get("source")
        owner = next((it for it in group if str(it.path) == written), group[0])
        for it in group:
            if it is not owner:
                out_conflicts[it.path] = (f"its record name {names[it.path]!r} belongs to "
                                          f"{owner.path} (names differ in extension or case "
                                          "only): rename one of them")
    return out_conflicts


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


def _nothing(kind: str, **data) -> None:
    pass


class Runner:
    def __init__(self, cfg: RunConfig, engine,
                 events: Callable[..., None] = _nothing):
        self.cfg = cfg
        self.engine = engine
        self.events = events
        self.out = cfg.out
        self.tmp = cfg.out / TMP
        k, n = cfg.shard
        suffix = f"-{k}-of-{n}" if n > 1 else ""
        self.results_path = self.out / f"results{suffix}.jsonl"
        self.summary_path = self.out / f"summary{suffix}.json"
        self.totals = Totals()
        self.opts_key = cfg.options.key()
        self.elapsed = 0.0
        self.summary: dict = {}

    # ---- one page
    def _write_page(self, name: str, item: InputItem, page: int, bgr: np.ndarray,
                    src_sha: str, scale: float) -> dict:
        t0 = time.perf_counter()
        opts = self.cfg.options
        if opts.px_per_mm is not None and scale != 1.0:  # a forced scale is the file's
            from dataclasses import replace
            opts = replace(opts, px_per_mm=opts.px_per_mm * scale)
        res = convert_page(bgr, self.engine, opts)
        t_model = time.perf_counter() - t0
        g = res.geometry
        source = f"sha256:{src_sha}" if self.cfg.anonymize else str(item.path)
        info = dict(px_per_mm=round(g.px_per_mm, 4), scale_source=g.scale_source,
                    skew_deg=round(g.skew_deg, 3), layout=res.layout, gain_mm_mv=res.gain,
                    **({} if res.chest_gain is None else {"chest_gain_mm_mv": res.chest_gain}),
                    rows=len(g.rows), rectified=g.rectified, warnings=texts(res.warnings),
                    warning_codes=codes(res.warnings),
                    **({"rotated_deg": res.rotated} if res.rotated else {}),
                    **({"mirrored": True} if res.mirrored else {}),
                    **({} if scale == 1.0 else {"input_scale": round(scale, 5)}))
        windows = window_records(res.windows, opts.fs, opts.speed)
        quality = dict(record=name, source=source, page=page, **info,
                       model_sha256=self.engine.sha256, quality=res.quality, windows=windows)
        if self.cfg.reference is not None:
            quality["reference"] = self._score(name, res.signal)
        files: list[tuple[str, bytes]] = [(f"{name}.quality.json",
                                           dumps(quality, indent=1).encode())]
        page_img = res.image if res.image is not None else bgr  # as read: upright
        files += self._pictures(name, page_img, res.signal, opts.fs, windows,
                                overlay=self.cfg.overlay, report=self.cfg.report)
        comments = [f"source: {source}", f"page: {page}", f"layout: {res.layout}",
                    f"px_per_mm: {g.px_per_mm:.4f}", f"skew_deg: {g.skew_deg:.3f}",
                    f"gain_mm_mv: {res.gain:g}"
                    + ("" if res.chest_gain is None else f" (chest {res.chest_gain:g})"),
                    f"speed_mm_s: {opts.speed:g}",
                    *([f"orientation: page turned {res.rotated} degrees clockwise to read it"]
                      if res.rotated else []),
                    *(["orientation: page mirrored left to right to read it"]
                      if res.mirrored else []),
                    f"quality: {res.quality['status']}", f"digitize: {__version__}",
                    f"model_sha256: {self.engine.sha256}", f"options: {self.opts_key}"]
        dat, hea, clipped = encode_record(name, res.signal, opts.fs, LEADS, comments=comments)
        files += [(f"{name}.dat", dat), (f"{name}.hea", hea.encode())]
        self._commit(files)
        return dict(status=res.quality["status"], record=name, clipped_samples=int(clipped),
                    seconds=round(time.perf_counter() - t0, 3),
                    model_seconds=round(t_model, 3), **info,
                    **({"reference": quality["reference"]} if "reference" in quality else {}))

    def _pictures(self, name: str, bgr: np.ndarray, signal: np.ndarray, fs: float,
                  windows: list[dict], overlay: bool, report: bool) -> list[tuple[str, bytes]]:
        """The overlay and the report's thumbnail and signal file of a page (made while the
        page is in memory); with --anonymize the page's header and footer are blurred."""
        if not (overlay or report):
            return []
        page = blur_outside(bgr, windows) if self.cfg.anonymize else bgr
        img = draw_overlay(page, signal, fs, windows, LEADS)
        files = [(f"{name}.overlay.png", _png(img))] if overlay else []
        return files + (report_files(name, img, signal, fs, LEADS) if report else [])

    def _commit(self, files: list[tuple[str, bytes]]) -> None:
        """Write every file to .tmp, then rename them into place in order (the .hea last).
        Any failure removes what was written: nothing partial is left."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        tmps = [(tmp_path(self.tmp, fname.replace("/", "~")), self.out / fname)
                for fname, _ in files]
        try:
            for (tmp, _), (_, data) in zip(tmps, files):
                tmp.write_bytes(data)
            for tmp, final in tmps:
                os.replace(tmp, final)
        finally:
            for tmp, _ in tmps:
                if tmp.exists():
                    tmp.unlink()

    def _score(self, name: str, signal: np.ndarray) -> dict | None:
        from digitize.leads import normalize_lead_name
        from digitize.metrics import resample_to, score_record
        ref_path = self.cfg.reference / name
        if not ref_path.with_suffix(".hea").is_file():
            return None
        import wfdb
        rec = wfdb.rdrecord(str(ref_path))
        ref = np.full((rec.sig_len, len(LEADS)), np.nan)
        for j, nm in enumerate(rec.sig_name):
            lead = normalize_lead_name(nm)
            if lead in LEADS:
                ref[:, LEADS.index(lead)] = rec.p_signal[:, j]
        est = np.stack([resample_to(signal[:, j], self.cfg.options.fs, rec.fs, rec.sig_len)
                        for j in range(len(LEADS))], axis=1)
        snr, leads = score_record(ref, est, rec.fs)
        return dict(snr_db=snr, leads={LEADS[j]: (s.to_json() if s else None)
                                       for j, s in enumerate(leads)})

    # ---- a done record given what this run's options add
    def _missing(self, name: str) -> list[str]:
        want = []
        if self.cfg.overlay and not (self.out / f"{name}.overlay.png").is_file():
            want.append("overlay")
        if self.cfg.reference is not None and \
                (self.cfg.reference / name).with_suffix(".hea").is_file():
            try:
                q = json.loads((self.out / f"{name}.quality.json").read_text())
            except (OSError, ValueError):
                q = {}
            if q.get("reference") is None:
                want.append("reference")
        if self.cfg.report and not has_report_files(self.out, name) and \
                self._has_windows(name):  # records of older versions: a row without pictures
            want.append("report")
        return want

    def _has_windows(self, name: str) -> bool:
        try:
            return "windows" in json.loads((self.out / f"{name}.quality.json").read_text())
        except (OSError, ValueError):
            return False

    def _complete(self, name: str, item: InputItem, want: list[str]) -> dict:
        """Add an overlay or reference scores to a done record from the record itself (and
        the page, for the overlay): the page is not converted again."""
        import wfdb
        qpath = self.out / f"{name}.quality.json"
        quality = json.loads(qpath.read_text())
        rec = wfdb.rdrecord(str(self.out / name))
        signal = np.full((rec.sig_len, len(LEADS)), np.nan)
        for j, nm in enumerate(rec.sig_name):
            if nm in LEADS:
                signal[:, LEADS.index(nm)] = rec.p_signal[:, j]
        files = []
        if "reference" in want:
            quality["reference"] = self._score(name, signal)
        if "overlay" in want or "report" in want:
            if "windows" not in quality:
                raise DigitizeError(f"record {name} was written by an older digitize without "
                                    "its lead windows: add --overwrite to draw its overlay")
            page, bgr, _ = next(iter(load_pages(item)))
            bgr = oriented(bgr, quality.get("rotated_deg", 0), bool(quality.get("mirrored")))
            files += self._pictures(name, bgr, signal, rec.fs, quality["windows"],
                                    overlay="overlay" in want, report="report" in want)
        files.insert(0, (f"{name}.quality.json", dumps(quality, indent=1).encode()))
        self._commit(files)
        return dict(status="completed", record=name, added=want,
                    **({"reference": quality["reference"]} if "reference" in want else {}))

    # ---- the batch
    def run(self, items: list[InputItem], names: dict[Path, str],
            conflicts: dict[Path, str] | None = None) -> Totals:
        self.out.mkdir(parents=True, exist_ok=True)
        if self.cfg.report:
            for sub in ("thumbs", "data"):
                (self.out / REPORT_DIR / sub).mkdir(parents=True, exist_ok=True)
        atomic_write(self.out / MARKER, dumps(dict(digitize=__version__)).encode(), self.tmp)
        stale = remove_stale(self.tmp)
        if stale:
            self.events("note", text=f"removed {stale} temporary file(s) of runs that died")
        conflicts = conflicts or {}
        self._not_ecg = {r["input"]: r for r in self._latest().values()
                         if r.get("status") == "not_ecg"}
        self.totals.inputs = len(items)
        t_start = time.perf_counter()
        q: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()
        claimed: dict[str, Path] = {}  # --anonymize: record name -> the input that took it

        def producer():  # decode/rasterise ahead of the model
            for it in items:
                if stop.is_set():
                    break
                try:
                    if it.path in conflicts:
                        raise DigitizeError(conflicts[it.path])
                    sha = file_sha256(it.path) if self.cfg.anonymize and it.path.is_file() \
                        else ""
                    base = ("ecg_" + sha[:16]) if self.cfg.anonymize else names[it.path]
                    if self.cfg.anonymize and base in claimed:
                        q.put(("duplicate", it, base, claimed[base]))
                        q.put(("end", it, None, None))
                        continue
                    claimed[base] = it.path
                    state = self._state(it, base)
                    if state is not None:
                        q.put(state)
                        q.put(("end", it, None, None))
                        continue
                    for page, img, scale in load_pages(it):
                        q.put(("page", it, (page, sha, scale, base), img))
                        if stop.is_set():
                            break
                except OSError as exc:  # a file vanished or became unreadable mid-run
                    q.put(("error", it, None, f"cannot read: {exc.strerror or exc}"))
                except DigitizeError as exc:
                    q.put(("error", it, None, str(exc)))
                except Exception as exc:  # noqa: BLE001 - a decoder bug must not stop the batch
                    log.info("cannot load %s", it.path, exc_info=True)
                    q.put(("error", it, None, f"cannot load: {type(exc).__name__}: {exc}"))
                q.put(("end", it, None, None))
            q.put(None)

        th = threading.Thread(target=producer, daemon=True)
        th.start()
        # pages convert on up to `workers` threads at once (the model session, OpenCV and
        # numpy release the GIL): page analysis overlaps the model. Messages are handled in
        # input order, so results.jsonl and the totals read as one thread's.
        workers = max(1, self.cfg.workers)
        pool = ThreadPoolExecutor(workers, thread_name_prefix="digitize-page")
        pending: collections.deque = collections.deque()  # (message, Future | None)
        in_flight = 0
        failed_item = False
        done_inputs = 0

        def work(fn, *args) -> dict:
            try:
                return dict(line=fn(*args))
            except NotEcg as exc:
                return dict(not_ecg=str(exc), evidence=exc.evidence)
            except (PageError, DigitizeError) as exc:
                return dict(reason=str(exc))
            except OSError as exc:
                if is_disk_full(exc):
                    return dict(disk_full=f"{exc.strerror or exc} ({exc.filename or self.out})")
                log.info("error on %s", args[1].path, exc_info=True)
                return dict(reason=f"cannot write: {exc.strerror or exc}")
            except Exception as exc:  # noqa: BLE001
                log.info("internal error on %s", args[1].path, exc_info=True)
                return dict(reason=f"internal error: {type(exc).__name__}: {exc}")

        def submit(msg):
            kind, it, meta, payload = msg
            if kind == "page":
                page, sha, scale, base = meta
                name = f"{base}_p{page}" if it.is_pdf else base
                return pool.submit(work, self._write_page, name, it, page, payload, sha, scale)
            if kind == "complete":
                return pool.submit(work, self._complete, meta, it, payload)
            return None

        def handle(msg, fut) -> bool:
            """One message, in input order; True when it is a failure."""
            nonlocal done_inputs
            kind, it, meta, payload = msg
            if kind == "end":
                done_inputs += 1
                self.events("progress", done=done_inputs, total=len(items),
                            pages=self.totals.pages, elapsed=time.perf_counter() - t_start)
                return False
            if kind == "skip":
                self.totals.skipped += 1
                self._emit(results, dict(input=self._src(it), status="skipped",
                                         record=meta, reason="already done"))
                return False
            if kind == "skip_not_ecg":
                self.totals.skipped += 1
                self._emit(results, dict(input=self._src(it), page=payload.get("page"),
                                         status="skipped", reason="not an ECG (found before)"))
                return False
            if kind == "duplicate":
                self.totals.duplicates += 1
                self._emit(results, dict(input=self._src(it), status="duplicate", record=meta,
                                         reason="same bytes as an input already converted"))
                self.events("note", text=f"{it.path}: same bytes as {payload}: one record "
                                         f"({meta})")
                return False
            if kind == "error":
                self._fail(results, it, payload)
                return True
            done = fut.result()
            if "disk_full" in done:
                raise DiskFull(done["disk_full"])
            if kind == "complete":
                if "reason" in done:
                    self._fail(results, it, done["reason"])
                    return True
                self.totals.completed += 1
                self._emit(results, dict(input=self._src(it), **done["line"]))
                return False
            page = meta[0]
            self.totals.pages += 1
            if "not_ecg" in done:
                self.totals.not_ecg += 1
                self.events("not_ecg", where=f"{it.path}" + (f" page {page}" if it.is_pdf else ""),
                            reason=done["not_ecg"])
                self._emit(results, dict(input=self._src(it), page=page, status="not_ecg",
                                         reason=done["not_ecg"], evidence=done["evidence"],
                                         model_sha256=self.engine.sha256,
                                         options=self.opts_key))
                return self.cfg.strict
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

        def next_message():
            while True:  # a timeout, so that signals reach this thread promptly
                try:
                    return q.get(timeout=0.5)
                except queue.Empty:
                    if not th.is_alive() and q.empty():
                        return None

        try:
            with open(self.results_path, "a", encoding="utf-8") as results:
                while True:
                    msg = next_message()
                    if msg is None:
                        break
                    if msg[0] in ("page", "complete"):
                        while in_flight >= workers:  # memory stays flat: so many pages
                            handle_head()
                    stopping = failed_item and self.cfg.fail_fast
                    fut = None if stopping else submit(msg)
                    if fut is not None:
                        in_flight += 1
                    if not stopping:
                        pending.append((msg, fut))
                    while pending and (pending[0][1] is None or pending[0][1].done()):
                        handle_head()
                    if failed_item and self.cfg.fail_fast:
                        stop.set()
                        while pending:  # pages already converting are finished and reported
                            handle_head()
                        break
                while pending:
                    handle_head()
        except BaseException as exc:  # a signal, a full disk: stop cleanly, then re-raise
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)  # pages converting finish whole
            remove_own(self.tmp)
            if isinstance(exc, OSError) and is_disk_full(exc):
                raise DiskFull(f"{exc.strerror or exc} ({exc.filename or self.out})") from None
            raise
        finally:
            stop.set()
            pool.shutdown(wait=True)
            while th.is_alive():  # let the producer see `stop` and end
                try:
                    q.get(timeout=0.1)
                except queue.Empty:
                    pass
        self.elapsed = time.perf_counter() - t_start
        try:
            self.finish()
        except OSError as exc:
            remove_own(self.tmp)
            if is_disk_full(exc):
                raise DiskFull(f"{exc.strerror or exc} ({exc.filename or self.out})") from None
            raise
        remove_own(self.tmp)  # and .tmp/ itself where nothing else is being written
        return self.totals

    def _state(self, it: InputItem, name: str):
        """None: convert; else the message for a done input (skip, or complete it)."""
        if self.cfg.overwrite or it.is_pdf or not it.path.is_file():
            return None  # PDFs: page count unknown until opened; always redone
        seen = self._not_ecg.get(self._src(it))
        if seen and seen.get("model_sha256") == self.engine.sha256 and \
                seen.get("options") == self.opts_key:
            return ("skip_not_ecg", it, name, seen)  # found to be no ECG by the same reading
        if not is_done(self.out, name, self.engine.sha256, self.opts_key):
            return None
        want = self._missing(name)
        return ("complete", it, name, want) if want else ("skip", it, name, None)

    def _src(self, it: InputItem) -> str:
        if self.cfg.anonymize:
            try:
                return "sha256:" + file_sha256(it.path)
            except OSError:
                return "sha256:unreadable"
        return str(it.path)

    def _fail(self, results, it: InputItem, reason: str, page: int | None = None) -> None:
        self.totals.failed += 1
        # the terminal names the file, even with --anonymize (the files do not)
        self.events("failed", where=f"{it.path}" + (f" page {page}" if page else ""),
                    reason=reason)
        self._emit(results, dict(input=self._src(it), page=page, status="error", reason=reason))

    @staticmethod
    def _emit(fh, obj: dict) -> None:
        fh.write(dumps(obj) + "\n")
        fh.flush()

    # ---- end of run
    def finish(self) -> None:
        """quality.csv, manifest.csv and summary.json over the whole output folder (every run
        and shard that wrote into it), with this run's own figures beside."""
        names = sorted(e.name[:-4] for e in os.scandir(self.out)
                       if e.name.endswith(".hea") and e.is_file())
        quality_rows, manifest_rows, report_rows = [], [], []
        folder = {"records": 0, "ok": 0, "warn": 0, "fail": 0}
        for name in names:
            qp = self.out / f"{name}.quality.json"
            try:
                qd = json.loads(qp.read_text())
            except (OSError, ValueError):
                continue  # not a record of ours
            status = qd["quality"]["status"]
            folder["records"] += 1
            folder[status] = folder.get(status, 0) + 1
            manifest_rows.append(dict(record=name, source=qd["source"], page=qd["page"],
                                      layout=qd["layout"], status=status))
            if self.cfg.report:
                report_rows.append(page_row(name, qd, self.out))
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
        unconverted = self._unconverted()
        folder["not_ecg"] = sum(r["status"] == "not_ecg" for r in unconverted)
        folder["failed_inputs"] = sum(r["status"] == "error" for r in unconverted)
        self._csv(self.out / "quality.csv", quality_rows,
                  ["record", "lead", "status", "confidence", "low_confidence_fraction",
                   "heart_rate_bpm", "flat_fraction", "clipped_fraction", "amplitude_mv",
                   "stray_fraction", "reasons"])
        self._csv(self.out / "manifest.csv", manifest_rows,
                  ["record", "source", "page", "layout", "status"])
        t = self.totals
        this_run = dict(inputs=t.inputs, pages=t.pages, converted=t.converted,
                        skipped=t.skipped, completed=t.completed, duplicates=t.duplicates,
                        failed=t.failed, not_ecg=t.not_ecg, quality=t.status,
                        seconds=round(self.elapsed, 2),
                        pages_per_s=round(t.pages / self.elapsed, 3) if self.elapsed else None)
        summary = dict(version=__version__, folder=folder, run=this_run,
                       provider=self.engine.provider, workers=max(1, self.cfg.workers),
                       model=str(self.engine.path), model_sha256=self.engine.sha256,
                       options=self.opts_key, shard=f"{self.cfg.shard[0]}/{self.cfg.shard[1]}")
        atomic_write(self.summary_path, dumps(summary, indent=1).encode(), self.tmp)
        self.summary = summary
        if self.cfg.report:
            atomic_write(self.out / "report.html",
                         write_report(self.out, _finite(report_rows), _finite(unconverted),
                                      _finite(summary), self.cfg.anonymize), self.tmp)

    def _latest(self) -> dict[tuple, dict]:
        """Per input (and page), its latest result line over every run and shard."""
        last: dict[tuple, dict] = {}
        for path in sorted(self.out.glob("results*.jsonl")):
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        r = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut by a killed run
                    if r.get("status") in ("skipped", "duplicate", "completed"):
                        continue  # says nothing new about the input
                    last[(r.get("input"), r.get("page"))] = r
                    if r.get("status") != "error":
                        last.pop((r.get("input"), None), None)  # a page of it now worked
        return last

    def _unconverted(self) -> list[dict]:
        """Inputs (pages) whose latest result, over every run, is a failure or no ECG."""
        return [dict(input=r.get("input"), page=r.get("page"), reason=r.get("reason"),
                     status=r.get("status")) for r in self._latest().values()
                if r.get("status") in ("error", "not_ecg")]

    def _csv(self, path: Path, rows: list[dict], cols: list[str]) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        tmp = tmp_path(self.tmp, path.name)
        try:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=cols)
                w.writeheader()
                w.writerows(rows)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise DigitizeError("the overlay could not be encoded")
    return buf.tobytes()


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
