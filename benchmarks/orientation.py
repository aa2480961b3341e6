"""Pages turned 90, 180 and 270 degrees (no EXIF), or mirrored: are they read upright, and as
well?

The ecg-image-kit val pages (clean, bw) and the bundled examples, each as it is, turned
clockwise by 90, 180 and 270 degrees, and mirrored left to right (as it is, and turned 180:
a sheet scanned from its back either way up), converted in one run as a user would (subprocess,
shipped model, --reference). Reports per turn: pages read upright (the turn digitize undid
equals the turn applied, and a mirror is undone exactly where one was applied), and the pooled SNR
against the upright copies' (targets: >= 98 % upright, SNR within 0.5 dB).

    ECG_DATA_DIR=../shared/data python benchmarks/eik.py --split val   # makes the references
    ECG_DATA_DIR=../shared/data python benchmarks/orientation.py
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
TURNS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
CASES = [(0, False), (90, False), (180, False), (270, False), (0, True), (180, True)]


def copy_reference(hea: Path, dst: Path, name: str) -> None:
    lines = hea.read_text().splitlines()
    first = lines[0].split()
    first[0] = name
    (dst / f"{name}.hea").write_text("\n".join([" ".join(first)] + lines[1:]) + "\n")
    for line in lines[1:]:
        if line and not line.startswith("#"):
            dat = line.split()[0]
            if not (dst / dat).exists():
                (dst / dat).symlink_to((hea.parent / dat).resolve())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eik-runs", default="runs/eik/val", help="benchmarks/eik.py's output")
    ap.add_argument("--out", default="runs/orientation")
    args = ap.parse_args()
    data = Path(os.environ.get("ECG_DATA_DIR", REPO.parent / "shared" / "data"))
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    pages, ref = out / "pages", out / "reference"
    pages.mkdir(parents=True)
    ref.mkdir()
    sources = []  # (image, reference .hea, name)
    for variant in ("clean", "bw"):
        for img in sorted((data / "eik" / "val" / variant).glob("*.png")):
            hea = Path(args.eik_runs) / variant / "reference" / f"{img.stem}.hea"
            if hea.is_file():
                sources.append((img, hea, f"{variant}_{img.stem}"))
    for img in sorted((REPO / "examples" / "pages").glob("*.*")):
        if img.suffix in (".png", ".jpg") and img.with_suffix(".hea").is_file():
            sources.append((img, img.with_suffix(".hea"), f"ex_{img.stem}"))
    for img, hea, name in sources:
        im = cv2.imread(str(img))
        for deg, mirror in CASES:
            n = f"{name}_{'m' if mirror else 'r'}{deg}"
            turned = im if deg == 0 else cv2.rotate(im, TURNS[deg])
            cv2.imwrite(str(pages / f"{n}{img.suffix}"), cv2.flip(turned, 1) if mirror else turned)
            copy_reference(hea, ref, n)
    rec = out / "records"
    subprocess.run([sys.executable, "-m", "digitize", str(pages), "--out", str(rec),
                    "--reference", str(ref), "--no-report", "-q"], cwd=REPO)
    got = {}
    for line in (rec / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        got[Path(r["input"]).stem] = r
    print(f"{len(sources)} pages (ecg-image-kit val clean+bw, examples), each turned 0/90/180/270"
          " and mirrored (m0: as it lies, m180: turned over)")
    print(f"{'case':>5s} {'pages':>5s} {'upright':>8s} {'SNR':>7s} {'SNR upright copy':>16s}")
    base = {}
    missed = []
    for deg, mirror in CASES:
        ok = n = 0
        snr, snr0 = [], []
        case = f"{'m' if mirror else 'r'}{deg}"
        for _, _, name in sources:
            r = got.get(f"{name}_{case}", {})
            n += 1
            # a mirrored page turned 180 is the same sheet mirrored top to bottom: undone
            # by a half turn and a left-right mirror
            undone = (r.get("rotated_deg", 0), bool(r.get("mirrored"))) \
                if "layout" in r else None
            right = undone == ((360 - deg) % 360, mirror)
            ok += right
            if not right:
                missed.append(f"{name} {case} ({'error' if undone is None else undone})")
            s = ((r.get("reference") or {}).get("snr_db"))
            s = 0.0 if s is None else s  # a failed page counts as 0 dB
            if case == "r0":
                base[name] = s
            snr.append(s)
            snr0.append(base[name])
        print(f"{case:>5s} {n:5d} {100 * ok / n:7.1f}% {np.mean(snr):7.2f} {np.mean(snr0):16.2f}")
    print("missed:", "; ".join(missed) if missed else "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
