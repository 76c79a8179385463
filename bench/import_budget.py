"""Import cost of ocilm in fresh processes: wall time of ``import ocilm`` and peak RSS.

Run: .venv/bin/python bench/import_budget.py [--runs 15]
Budget (issue 2): under 0.15 s and under 45 MB RSS on the 2-core reference machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

# Peak RSS from /proc (VmHWM): getrusage's ru_maxrss keeps the forking parent's peak on Linux.
PROBE = """
import time
t = time.perf_counter()
{stmt}
dt = time.perf_counter() - t
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(dt, int(hwm.split()[1]) / 1024)
"""


def measure(stmt: str, runs: int) -> dict:
    times, rss = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", PROBE.format(stmt=stmt)], capture_output=True, text=True, check=True).stdout.split()
        times.append(float(out[0]))
        rss.append(float(out[1]))
    return {"median_s": statistics.median(times), "max_s": max(times), "rss_mb": statistics.median(rss)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    rows = {
        "python (nothing imported)": measure("pass", args.runs),
        "import ocilm": measure("import ocilm", args.runs),
        "import ocilm + first use (Client class)": measure("import ocilm; ocilm.Client", args.runs),
        "import httpx (for scale)": measure("import httpx", args.runs),
    }
    print(json.dumps(rows, indent=2))
    ok = rows["import ocilm"]["median_s"] < 0.15 and rows["import ocilm"]["rss_mb"] < 45
    print("budget met" if ok else "BUDGET MISSED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
