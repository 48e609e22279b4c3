#!/usr/bin/env python3
"""One table of EER and minDCF from the JSON files of ``speakervlad eval --json``.

    local/results_table.py [--markdown results.md] cosine=exp/results/cosine.json AS-norm=exp/results/asnorm.json

Each argument is LABEL=JSON (LABEL names the system or scoring); rows are the
trial lists in each file, official VoxCeleb lists named Vox1-O/E/H. Prints
the table; ``--markdown`` also writes it as a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: official list file stem -> the name used in papers
NAMES = {
    "veri_test": "Vox1-O", "veri_test2": "Vox1-O (cleaned)",
    "list_test_all": "Vox1-E", "list_test_all2": "Vox1-E (cleaned)",
    "list_test_hard": "Vox1-H", "list_test_hard2": "Vox1-H (cleaned)",
}
P_TARGETS = ("0.01", "0.05")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", metavar="LABEL=JSON")
    parser.add_argument("--markdown", type=Path, help="also write a Markdown table here")
    args = parser.parse_args()
    header = ["system", "trial list", "trials", "EER %"] + [f"minDCF {p}" for p in P_TARGETS]
    rows = []
    for item in args.results:
        label, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            print(f"results_table: expected LABEL=JSON with an existing file, got {item!r}", file=sys.stderr)
            return 1
        for result in json.loads(Path(path).read_text())["results"]:
            dcf = result["min_dcf"]
            rows.append([label, NAMES.get(result["name"], result["name"]), str(result["trials"]),
                         f"{100 * result['eer']:.2f}"]
                        + [f"{dcf[p]['value']:.4f}" if p in dcf else "-" for p in P_TARGETS])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    if args.markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
