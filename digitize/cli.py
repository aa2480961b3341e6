"""``digitize``: batch-convert scanned ECG pages (images, PDFs) into WFDB records.

Exit codes: 0 every input converted (or was already done, or is no ECG: a cover sheet, a
letter; also when nothing was found),
1 any input failed (with --strict, pages that are no ECG too), or the output disk filled up (the run stops; rerun to resume),
2 usage errors (bad options, an input that does not exist, an output folder that cannot be
written, a model that cannot be loaded, --device cuda without CUDA), 130 interrupted (Ctrl-C),
143 terminated (SIGTERM). Interrupted runs leave no partial files; rerun the same command to
resume.

Output: the closing summary line goes to stdout; errors, warnings, progress and logs to
stderr.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import click

from digitize import __version__
from digitize.layouts import GAINS, LAYOUTS

LAYOUT_CHOICES = ("auto",) + LAYOUTS

EPILOG = """\b
Example:
  digitize scans/ archive.pdf --out wfdb/ --overlay
  digitize scans/ --out wfdb/ --shard $SLURM_ARRAY_TASK_ID/16   # one of 16 array tasks
"""


def _shard(ctx, param, value: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in value.split("/"))
    except ValueError:
        raise click.BadParameter(f"expected K/N (e.g. 0/4), got {value!r}") from None
    if not (n >= 1 and 0 <= k < n):
        raise click.BadParameter(f"need 0 <= K < N, got {value!r}")
    return k, n


def _gain(ctx, param, value: str) -> str:
    if value == "auto":
        return value
    try:
        g = float(value)
    except ValueError:
        g = None
    if g not in GAINS:
        raise click.BadParameter("expected auto or one of "
                                 + ", ".join(f"{x:g}" for x in GAINS) + " (mm/mV)")
    return f"{g:g}"


class Terminated(BaseException):
    """SIGTERM (a batch scheduler's stop): handled like Ctrl-C, exit 143."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _say(text: str) -> None:
    click.echo(f"digitize: {text}", err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(__version__, prog_name="digitize")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (created).")
@click.option("--layout", default="auto", show_default=True,
              help="Page layout: " + ", ".join(LAYOUT_CHOICES) + ".")
@click.option("--leads", default="II", show_default=True,
              help="Lead name(s) of a single-lead strip, comma-separated.")
@click.option("--speed", default=25.0, show_default=True, type=click.FloatRange(min=1),
              help="Paper speed, mm/s.")
@click.option("--gain", default="auto", show_default=True, callback=_gain,
              help="mm/mV: auto (from calibration pulses, else 10 with a warning), "
                   + ", ".join(f"{x:g}" for x in GAINS) + ".")
@click.option("--printed-gain", type=click.Choice(["auto", "on", "off"]), default="auto",
              show_default=True,
              help="On pages without a calibration pulse, read the gain printed in the footer "
                   "(OCR: pytesseract and the tesseract program). auto: where installed; on: "
                   "required.")
@click.option("--fs", default=500.0, show_default=True, type=click.FloatRange(min=50),
              help="Output sampling rate, Hz.")
@click.option("--px-per-mm", type=click.FloatRange(min=1), default=None,
              help="Force the scale (e.g. dpi/25.4) instead of measuring it.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="ONNX Runtime provider.")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1),
              help="Lead strips per model call (more: faster on a GPU, more memory).")
@click.option("--workers", default=0, type=click.IntRange(min=0),
              help="Pages converted at once, on threads sharing the one model "
                   "(0: one per CPU core, at most 8).")
@click.option("--threads", default=0, type=click.IntRange(min=0),
              help="CPU threads for each model call (0: the cores shared among --workers).")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="ONNX model (default: the shipped one).")
@click.option("--overwrite", is_flag=True, help="Redo records already done (default: skip).")
@click.option("--overlay", is_flag=True,
              help="Also write <record>.overlay.png (copies the whole page, identifiers too).")
@click.option("--no-report", "no_report", is_flag=True,
              help="Do not write report.html (the review page) and its report/ folder.")
@click.option("--reference", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=None, help="Folder of ground-truth WFDB records, matched by name: score.")
@click.option("--shard", default="0/1", callback=_shard,
              help="K/N: take the inputs i with i % N == K of the sorted list.")
@click.option("--anonymize", is_flag=True,
              help="No source paths in output files: record names and sources from the "
                   "sha256 (byte-identical inputs become one record). Failures still name "
                   "the file on the terminal.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first failed input.")
@click.option("--strict", is_flag=True,
              help="Count pages that are not ECGs (cover sheets, letters...) as failed inputs "
                   "(exit 1); by default they are reported as not_ecg and the exit code stays 0.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv: debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors; no progress bar.")
def main(inputs, out, layout, leads, speed, gain, fs, printed_gain, px_per_mm, device,
         batch_size, workers, threads, model, overwrite, overlay, no_report, reference, shard,
         anonymize, fail_fast, strict, verbose, quiet):
    """Convert ECG images and PDFs under INPUTS (files or folders, searched recursively) into
    WFDB records (12 leads, mV) with quality metrics, in --out."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else
                                         logging.INFO if verbose else logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("digitize: %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("digitize")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    log = logging.getLogger(__name__)
    if layout not in LAYOUT_CHOICES:
        raise click.BadParameter(f"unsupported layout {layout!r}; expected one of "
                                 + ", ".join(LAYOUT_CHOICES), param_hint="--layout")
    from digitize.leads import normalize_lead_name
    try:
        lead_names = tuple(normalize_lead_name(x) for x in leads.split(","))
    except (KeyError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--leads") from None
    if any(x is None for x in lead_names):
        raise click.BadParameter(f"unknown lead in {leads!r}", param_hint="--leads")
    missing = [a for a in inputs if not os.path.exists(a)]
    for a in missing:
        _say(f"error: {a}: no such file or directory")
    if missing:
        sys.exit(2)

    if printed_gain == "on":
        from digitize.printed import available
        if not available():
            _say("error: --printed-gain on needs pytesseract and the tesseract program "
                 "(pip install '.[ocr]'; e.g. apt install tesseract-ocr)")
            sys.exit(2)
    # Tesseract (labels, printed gain) runs as a subprocess per call: one thread each is
    # ~0.12 s a call instead of ~0.4 s
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")

    from digitize.files import check_writable
    try:
        check_writable(out)
    except OSError as exc:
        _say(f"error: cannot write to --out {out}: {exc.strerror or exc}")
        sys.exit(2)

    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = _convert(inputs, out, layout, lead_names, speed, gain, fs, printed_gain,
                        px_per_mm, device, batch_size, workers, threads, model, overwrite,
                        overlay, reference, shard, anonymize, fail_fast, quiet, log,
                        report=not no_report, strict=strict)
    except KeyboardInterrupt:
        _say("interrupted — rerun the same command to resume")
        code = 130
    except Terminated:
        _say("terminated — rerun the same command to resume")
        code = 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.exit(code)


def _convert(inputs, out, layout, lead_names, speed, gain, fs, printed_gain, px_per_mm, device,
             batch_size, workers, threads, model, overwrite, overlay, reference, shard,
             anonymize, fail_fast, quiet, log, report: bool = True, strict: bool = False) -> int:
    from digitize.engine import Engine, EngineError, default_model_path, usable_cpus
    from digitize.io import discover
    from digitize.io import shard as take_shard
    from digitize.pipeline import Options
    from digitize.run import DiskFull, RunConfig, Runner, name_conflicts, record_names
    try:
        cores = usable_cpus()
        workers = workers or min(8, cores)
        engine = Engine(model or default_model_path(), device=device,
                        threads=threads or max(1, cores // workers))
        from digitize import segment
        segment.configure(device, threads or max(1, cores // workers))
        segment.segmenter()  # the page net loads now: a bad DIGITIZE_SEG_MODEL stops the run
    except (EngineError, RuntimeError) as exc:
        _say(f"error: {exc}")
        return 2
    log.info("model %s (%s), provider %s; %d pages at once", engine.path.name, engine.version,
             engine.provider, workers)
    items = discover(list(inputs), exclude=(out,))
    if not items:
        _say("nothing to convert: no images or PDFs found under "
             + ", ".join(str(a) for a in inputs))
        return 0
    names = record_names(items)  # from each input's relative path alone
    conflicts = name_conflicts(items, names, out)
    items = take_shard(items, *shard)
    opts = Options(layout=layout, leads=lead_names, speed=speed, gain=gain, fs=fs,
                   batch_size=batch_size, px_per_mm=px_per_mm,
                   read_printed_gain=printed_gain != "off")
    cfg = RunConfig(out=out, options=opts, overwrite=overwrite, overlay=overlay,
                    reference=reference, anonymize=anonymize, fail_fast=fail_fast, shard=shard,
                    workers=workers, report=report, strict=strict)
    from tqdm import tqdm
    bar = tqdm(total=len(items), unit="input", disable=quiet or not sys.stderr.isatty(),
               dynamic_ncols=True)

    def events(kind: str, **data) -> None:
        if kind == "failed":  # always shown, -q included: one line naming the file
            bar.clear()
            _say(f"error: {data['where']}: {data['reason']}")
        elif kind == "not_ecg" and (strict or not quiet):
            bar.clear()
            _say(f"{'error: ' if strict else ''}{data['where']}: {data['reason']}")
        elif kind == "note" and not quiet:
            bar.clear()
            _say(data["text"])
        elif kind == "progress":
            bar.update(data["done"] - bar.n)
            if data["elapsed"]:
                bar.set_postfix(pages_s=f"{data['pages'] / data['elapsed']:.2f}")

    runner = Runner(cfg, engine, events)
    try:
        totals = runner.run(items, names, conflicts)
    except DiskFull as exc:
        bar.close()
        _say(f"error: the output disk is full or refuses writes: {exc} — free space and rerun "
             "the same command to resume (partial files were removed)")
        return 1
    finally:
        bar.close()
    s = runner.summary
    r, f = s["run"], s["folder"]
    if not quiet:
        extra = "".join(f", {r[k]} {k}" for k in ("not_ecg", "completed", "duplicates") if r[k])
        click.echo(f"digitize: {r['converted']} converted ({r['quality']['ok']} ok, "
                   f"{r['quality']['warn']} warn, {r['quality']['fail']} fail), "
                   f"{r['skipped']} already done{extra}, {r['failed']} failed; "
                   f"{r['pages_per_s']} pages/s on {s['provider']}; the folder holds "
                   f"{f['records']} records ({f['ok']} ok, {f['warn']} warn, {f['fail']} fail)"
                   + (f"; review: {out / 'report.html'}" if report else ""))
    return 1 if totals.failed or (strict and totals.not_ecg) else 0


if __name__ == "__main__":  # pragma: no cover
    main()
