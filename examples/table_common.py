"""What the two `kind: table` walk-throughs (table_yeast.py, table_solarflare.py) share: their
command line, and `manytask init` run on the CSV they wrote."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def parse_args(description: str) -> argparse.Namespace:
    """``--out`` (created), ``--seeds`` and ``--threads``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=Path("runs/tables"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def manytask_init(csv: Path, targets: list[str], config: Path, *options: str) -> Path:
    """Write ``config`` with ``manytask init CSV --targets ... OPTIONS --force``; return its path."""
    subprocess.run([sys.executable, "-m", "manytask.cli", "init", str(csv), "--targets", ",".join(targets),
                    *options, "--out", str(config), "--force"], check=True)
    return config
