"""``digitize``: batch-convert scanned ECG pages (images, PDFs) into WFDB records.

Exit codes: 0 every input converted (or was already done), 1 any input failed, 2 usage errors
(bad options, model that cannot be loaded, --device cuda without CUDA).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from digitize import __version__

LAYOUT_CHOICES = ("auto", "strip", "3x4", "3x4+1", "3x4+2", "3x4+3", "6x2", "6x2+1", "6x1", "12x1")

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
    if value != "auto" and value not in ("5", "10", "20"):
        raise click.BadParameter("expected auto, 5, 10 or 20 (mm/mV)")
    return value


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
              help="mm/mV: auto (from calibration pulses, else 10 with a warning), 5, 10, 20.")
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
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1))
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
@click.option("--reference", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=None, help="Folder of ground-truth WFDB records, matched by name: score.")
@click.option("--shard", default="0/1", callback=_shard,
              help="K/N: take the inputs i with i %% N == K of the sorted list.")
@click.option("--anonymize", is_flag=True,
              help="No source paths in outputs: record names and sources from the sha256.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first failed input.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv: debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors; no progress bar.")
def main(inputs, out, layout, leads, speed, gain, fs, printed_gain, px_per_mm, device,
         batch_size, workers, threads, model, overwrite, overlay, reference, shard, anonymize,
         fail_fast, verbose, quiet):
    """Convert ECG images and PDFs under INPUTS (files or folders, searched recursively) into
    WFDB records (12 leads, mV) with quality metrics, in --out."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else
                                         logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(level=level, format="digitize: %(levelname)s %(message)s",
                        stream=sys.stderr)
    log = logging.getLogger("digitize")
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

    if printed_gain == "on":
        from digitize.printed import available
        if not available():
            click.echo("digitize: error: --printed-gain on needs pytesseract and the tesseract "
                       "program (pip install '.[ocr]'; e.g. apt install tesseract-ocr)", err=True)
            sys.exit(2)

    from digitize.engine import Engine, EngineError, default_model_path, usable_cpus
    from digitize.io import discover
    from digitize.io import shard as take_shard
    from digitize.pipeline import Options
    from digitize.run import RunConfig, Runner, record_names
    try:
        cores = usable_cpus()
        workers = workers or min(8, cores)
        engine = Engine(model or default_model_path(), device=device,
                        threads=threads or max(1, cores // workers))
    except EngineError as exc:
        click.echo(f"digitize: error: {exc}", err=True)
        sys.exit(2)
    log.info("model %s (%s), provider %s; %d pages at once", engine.path.name, engine.version,
             engine.provider, workers)
    items = discover(list(inputs))
    names = record_names(items)  # over the whole input set: shards agree on names
    items = take_shard(items, *shard)
    opts = Options(layout=layout, leads=lead_names, speed=speed, gain=gain, fs=fs,
                   batch_size=batch_size, px_per_mm=px_per_mm,
                   read_printed_gain=printed_gain != "off")
    cfg = RunConfig(out=out, options=opts, overwrite=overwrite, overlay=overlay,
                    reference=reference, anonymize=anonymize, fail_fast=fail_fast, shard=shard,
                    progress=not quiet and sys.stderr.isatty(), workers=workers)
    runner = Runner(cfg, engine)
    totals = runner.run(items, names)
    s = runner.summary
    if not quiet:
        click.echo(f"digitize: {s['converted']} converted ({s['quality']['ok']} ok, "
                   f"{s['quality']['warn']} warn, {s['quality']['fail']} fail), "
                   f"{s['skipped']} already done, {s['failed']} failed; {s['pages_per_s']} "
                   f"pages/s on {s['provider']}", err=True)
    sys.exit(1 if totals.failed else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
