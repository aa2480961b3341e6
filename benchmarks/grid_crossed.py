"""Grid comb both ways (geometry.crossed_comb) on ECG val pages (eik val, real scans, examples)
and generated non-ECG images (tests 0..41, benchmark seeds 1000..1048): the basis of
evidence.EVIDENCE.grid_crossed.  python benchmarks/grid_crossed.py > benchmarks/grid_crossed.txt"""
import sys, glob, cv2, numpy as np
sys.path.insert(0,'tests')
import non_ecg
from digitize.geometry import grid_pitch, crossed_comb
def row(name, img):
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim==3 else img
    p=grid_pitch(g)
    print(f"{name:40s} xy {p.px_per_mm:6.2f}/{p.strength:7.2f} crossed {crossed_comb(g):7.2f}", flush=True)
ecg = sorted(glob.glob('/work/shared/data/eik/val/*/*.*'))+sorted(glob.glob('/work/shared/data/real-scans/**/*.*',recursive=True))+sorted(glob.glob('examples/pages/*.png'))
ecg=[f for f in ecg if f.lower().endswith(('.png','.jpg','.jpeg'))]
for f in ecg:
    row('ECG '+f.split('/')[-2][:6]+'/'+f.split('/')[-1][:25], cv2.imread(f))
for i in list(range(0,42))+list(range(1000,1049)):
    k,img=non_ecg.make(i); row(f'NON {i}_{k}', img)
