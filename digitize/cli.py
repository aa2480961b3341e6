"""``digitize``: batch-convert scanned ECG pages into WFDB records.

The conversion pipeline (page geometry, layout, ONNX model, WFDB writing) is tracked in the
digitize issue and is not implemented yet: this entry point answers ``--version``/``--help``
and refuses to convert, with exit code 2, rather than pretend to.
"""
from __future__ import annotations

import sys

import click

from digitize import __version__


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               epilog="Example: digitize scans/ --out wfdb/")
@click.version_option(__version__, prog_name="digitize")
@click.argument("inputs", nargs=-1, type=click.Path(path_type=str))
@click.option("--out", type=click.Path(file_okay=False, path_type=str), help="output folder")
def main(inputs: tuple[str, ...], out: str | None) -> None:
    """Convert ECG images/PDFs under INPUTS into WFDB records in --out (not implemented yet)."""
    click.echo("digitize: conversion is not implemented yet in this version "
               f"({__version__}); only the renderer and data layer exist.", err=True)
    sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
