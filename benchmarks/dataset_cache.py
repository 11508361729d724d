"""First load against cached load of an image folder, as a sweep's workers see it.

    python benchmarks/dataset_cache.py                  # about 5,000 JPEGs; a minute or two on 2 cores
    python benchmarks/dataset_cache.py --images 13394 --image-size 160

It writes a folder in Imagenette's layout (train/ and val/, 10 class folders of JPEGs at
imagenette2-160's sizes: a short side of 160 pixels), then loads it with ``load_dataset`` in
fresh processes, one after another, each as a new worker would:

1. ``first``: the cache is empty, so the JPEGs are decoded and resized (with ``joblib.Parallel``
   threads) and the arrays are stored in the cache;
2. ``cached``: the next workers read the arrays back memory-mapped (timed ``--repeats`` times);
3. ``no cache`` (``ABLATE_CACHE=off``): what every worker paid before the cache.

Two times per process, wall-clock, without interpreter start-up: ``parsed arrays`` (decoding, or
reading the cache with every page touched) and ``load_dataset`` (that, then the stratified split
and the float32 standardisation, which the cache does not change). The machine may be shared:
compare within one invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLASSES = ("n01440764", "n02102040", "n02979186", "n03000684", "n03028079", "n03394916", "n03417042",
           "n03425413", "n03445777", "n03888605")  # Imagenette's class folders


def write_folder(root: Path, n_images: int, seed: int = 0) -> int:
    """~n_images JPEGs (70% train, 30% val), smooth random colour fields, 160 x (160..240) pixels."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    per_class = {"train": round(0.7 * n_images / len(CLASSES)), "val": round(0.3 * n_images / len(CLASSES))}
    written = 0
    for split, n in per_class.items():
        for c in CLASSES:
            folder = root / split / c
            folder.mkdir(parents=True, exist_ok=True)
            for j in range(n):
                w = int(rng.integers(160, 241))
                small = rng.integers(0, 256, size=(10, 12, 3), dtype=np.uint8)  # upsampled: JPEG-like content
                image = Image.fromarray(small).resize((w, 160), Image.Resampling.BICUBIC)
                image.save(folder / f"{c}_{j:05d}.JPEG", quality=90)
                written += 1
    return written


def load_once(path: Path, image_size: int, cache: str) -> dict[str, float]:
    """Seconds a fresh process spends getting the parsed arrays (``arrays``: decoded, or read from
    the cache and every page touched) and in the whole ``load_dataset`` (``total``: that, then the
    split and the standardisation to float32, which the cache does not change)."""
    code = f"""
import json, time
import numpy as np
from ablate.data import catalogue as c
t = time.perf_counter()
found = c._resolve("imagenette", {str(path)!r}, download=False)
raw = c._load_raw("imagenette", found.kind, found.location, {image_size}, c._sources_key(found))
checksum = int(raw.x_train.sum(dtype=np.int64)) + int(raw.x_test.sum(dtype=np.int64))  # read every byte
arrays = time.perf_counter() - t
d = c.load_dataset("imagenette", path={str(path)!r}, image_size={image_size}, val_fraction=0)
print(json.dumps({{"arrays": arrays, "total": time.perf_counter() - t, "checksum": checksum}}))
"""
    env = {**os.environ, "ABLATE_CACHE": cache, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="cached loads to time")
    parser.add_argument("--folder", type=Path, default=None, help="reuse (or write) the JPEGs here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="ablate-bench-") as tmp:
        root = args.folder or Path(tmp) / "imagenette-synthetic"
        t = time.perf_counter()
        n = sum(1 for _ in root.rglob("*.JPEG")) if root.is_dir() else write_folder(root, args.images)
        print(f"{n} JPEGs in {root} (written in {time.perf_counter() - t:.1f} s), image_size {args.image_size}, "
              f"{os.cpu_count()} CPUs")
        cache = str(Path(tmp) / "cache")
        first = load_once(root, args.image_size, cache)
        cached = [load_once(root, args.image_size, cache) for _ in range(args.repeats)]
        bare = load_once(root, args.image_size, "off")
        assert {r["checksum"] for r in [first, bare, *cached]} == {first["checksum"]}, "cached arrays differ"
        size = sum(p.stat().st_size for p in Path(cache).rglob("*") if p.is_file()) / 2**20

        def median(key):
            return statistics.median(r[key] for r in cached)

        print(f"{'':34s}{'parsed arrays':>14s}{'load_dataset':>14s}")
        print(f"{'first load (decode, resize, store)':34s}{first['arrays']:12.2f} s{first['total']:12.2f} s")
        print(f"{f'cached load, median of {len(cached)}':34s}{median('arrays'):12.2f} s{median('total'):12.2f} s")
        print(f"{'no cache (ABLATE_CACHE=off)':34s}{bare['arrays']:12.2f} s{bare['total']:12.2f} s")
        print(f"cache on disk: {size:.0f} MiB; a cached worker gets the parsed arrays "
              f"{bare['arrays'] / median('arrays'):.0f}x faster than decoding them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
