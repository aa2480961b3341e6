"""More third-party val pages: the ecg-image-kit pages of ../shared/data/eik's plan that the
shared folder leaves out (issue #15: pages we did not draw are the measure of everything).

The shared folder holds 19 of the 44 val records (strat_fold 8) its plan generated; this
regenerates the other 25 x 3 variants with ecg-image-kit itself, run outside the project
(nothing of it is copied here): the plan's own commands, seeds and resolutions
(``tools/plan_full_252_pages.csv``) through the shared launcher ``tools/eik_run.py``, then
laid out as the shared folder is (scan pages saved as JPEG quality 80, clean and b/w as PNG;
a manifest of the columns benchmarks/eik.py reads). Regenerating a shared page this way gave
it pixel for pixel (val scan 00012).

Setup, once (a machine with internet or a package mirror):

    ecg-image-kit at commit 27b90f56896c9fc78b05a83ca14844ea2637aa0b (its
    codes/ecg-image-generator folder), and a Python for it:
    python3 -m venv kit-venv
    kit-venv/bin/pip install -r ../shared/data/eik/tools/requirements-used.txt

Then:

    python benchmarks/eik_extra.py --kit PATH/codes/ecg-image-generator \\
        --python kit-venv/bin/python --out runs/eikx   # -> runs/eikx/eik/{manifest.csv,val/...}
    ECG_DATA_DIR=runs/eikx python benchmarks/eik.py --split val --out runs/eikx_read

``--reseed K --variants scan`` draws new pages instead: every val record of the plan (the
shared ones too), the plan's command with its seed moved by K x 100,000,000 (the plan's seeds
are under 10^8), so the same generator settings give other rotations, noise, wrinkles and
grid colours; the manifest's ``seed`` column holds the seed used.

These are val pages (fold 8): choices may be made on them, as on the shared val pages.

``--split test`` makes the plan's test records (folds 9-10) the shared folder leaves out
(29 of its 40): a third-party test set no choice has seen. Score it once, when the work is
done (``ECG_DATA_DIR=runs/eikt python benchmarks/eik.py --split test``).
"""
from __future__ import annotations

import argparse
import csv
import os
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kit", required=True, help="ecg-image-kit's codes/ecg-image-generator")
    ap.add_argument("--python", required=True, help="a Python with the generator's requirements")
    ap.add_argument("--out", required=True, help="folder that will hold eik/")
    ap.add_argument("--data", default=None, help="folder holding eik/ and ptbxl/ "
                    "(default $ECG_DATA_DIR or ../shared/data)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reseed", type=int, default=0,
                    help="K > 0: every val record, seeds moved by K x 10^8 (new pages)")
    ap.add_argument("--split", default="val", choices=("val", "test"),
                    help="the plan's split to make (default val; test pages are held out: "
                    "score them once)")
    ap.add_argument("--variants", default="clean,bw,scan",
                    help="comma-separated variants to make (default all three)")
    args = ap.parse_args()
    data = Path(args.data or os.environ.get("ECG_DATA_DIR") or REPO.parent / "shared" / "data")
    shared, out = data / "eik", Path(args.out).resolve()
    split = args.split
    have = {p.name.split("_")[0] for p in (shared / split / "clean").glob("*.hea")}
    with open(shared / "tools" / "plan_full_252_pages.csv") as fh:
        plan = [r for r in csv.DictReader(fh)
                if r["split"] == split and r["variant"] in args.variants.split(",")
                and (args.reseed or r["record"].split("_")[0] not in have)]
    if args.reseed:
        for r in plan:
            seed = int(r["seed"])
            assert seed < 10 ** 8, seed
            r["seed"] = str(seed + args.reseed * 10 ** 8)
            argv = shlex.split(r["args"])
            argv[argv.index("-se") + 1] = r["seed"]
            r["args"] = shlex.join(argv)
    work = out / "work"

    def generate(r: dict) -> tuple[dict, int]:
        rec = r["record"]
        src = work / "single" / rec
        src.mkdir(parents=True, exist_ok=True)
        for ext in (".hea", ".dat"):
            link = src / f"{rec}{ext}"
            try:  # another variant's thread may have linked it first
                link.symlink_to(data / "ptbxl" / "records500" / f"{rec[:2]}000" / f"{rec}{ext}")
            except FileExistsError:
                pass
        gen = work / "gen" / r["variant"] / rec
        gen.mkdir(parents=True, exist_ok=True)
        if (gen / f"{rec}-0.png").exists():
            return r, 0
        argv = shlex.split(r["args"])
        argv[argv.index("-i") + 1], argv[argv.index("-o") + 1] = str(src), str(gen)
        with open(gen / "log.txt", "w") as log:
            rc = subprocess.call([args.python, str(shared / "tools" / "eik_run.py")] + argv,
                                 stdout=log, stderr=subprocess.STDOUT,
                                 env=dict(os.environ, EIK_GEN=str(Path(args.kit).resolve())))
        return r, rc

    failed = 0
    with ThreadPoolExecutor(args.workers) as ex:
        for r, rc in ex.map(generate, plan):
            print(r["variant"], r["record"], r["layout"], r["resolution"], "rc", rc, flush=True)
            failed += rc != 0
    from PIL import Image  # the generator's venv and ours both have Pillow
    rows = []
    for r in sorted(plan, key=lambda r: (r["variant"], r["record"])):
        rec, variant = r["record"], r["variant"]
        gen = work / "gen" / variant / rec
        if not (gen / f"{rec}-0.png").exists():
            continue
        dst = out / "eik" / split / variant
        dst.mkdir(parents=True, exist_ok=True)
        if variant == "scan":
            image = f"{rec}-0.jpg"
            Image.open(gen / f"{rec}-0.png").convert("RGB").save(
                dst / image, "JPEG", quality=80, optimize=True, progressive=True)
        else:
            image = f"{rec}-0.png"
            shutil.copy(gen / image, dst / image)
        for ext in (".hea", ".dat"):
            shutil.copy(gen / f"{rec}{ext}", dst / f"{rec}{ext}")
        w, h = Image.open(dst / image).size
        rows.append(dict(split=split, variant=variant, ecg_id=r["ecg_id"], record=rec,
                         image=f"{split}/{variant}/{image}", truth=f"{split}/{variant}/{rec}",
                         layout=r["layout"], num_columns=r["num_columns"],
                         full_mode_lead=r["full_mode"], dpi=r["resolution"], width=w, height=h,
                         seed=r["seed"], command=r["args"]))
    if rows:
        with open(out / "eik" / "manifest.csv", "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=list(rows[0]))
            wr.writeheader()
            wr.writerows(rows)
    print(f"{len(rows)} pages in {out / 'eik'}; {failed} generator calls failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
