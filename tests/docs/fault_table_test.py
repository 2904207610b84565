#!/usr/bin/python3
"""fault_table_test: every fault code the collector labels (`venuewatch-server --help-labels`:
the agent's fault table, the item-3.6 criteria and the collector's site_silent) has a row in
docs/zh-CN/venue.md's fault table, with the same Chinese name the dashboard shows, and the
table has no code that no longer exists. A new fault code without guidance for the venue's
staff fails here.

    fault_table_test.py SERVER_BINARY docs/zh-CN/venue.md
"""

import re
import subprocess
import sys

BEGIN, END = "<!-- fault-table: begin -->", "<!-- fault-table: end -->"
ROW = re.compile(r"^\|\s*`([a-z0-9_]+)`\s*\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|\s*$")


def labelled_faults(server):
    """code -> zh-CN label from the 'faults' group of --help-labels' tables."""
    out = subprocess.run([server, "--help-labels"], check=True, capture_output=True,
                         text=True).stdout
    faults, group = {}, None
    for line in out.splitlines():
        g = re.match(r"^\*\*.*\*\* \(`(\w+)`\)", line)
        if g:
            group = g.group(1)
            continue
        m = re.match(r"^\| `([a-z0-9_]+)` \| ([^|]+) \|", line)
        if m and group == "faults":
            faults[m.group(1)] = m.group(2).strip()
    return faults


def guide_rows(path):
    """code -> (line, name, meaning, action) from the table between the markers."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    try:
        start, end = lines.index(BEGIN), lines.index(END)
    except ValueError:
        sys.exit(f"{path}: the fault table's markers ({BEGIN} ... {END}) are missing")
    rows = {}
    for n in range(start + 1, end):
        m = ROW.match(lines[n])
        if m:
            code = m.group(1)
            if code in rows:
                sys.exit(f"{path}:{n + 1}: fault {code} has a second row (first at line "
                         f"{rows[code][0]})")
            rows[code] = (n + 1, m.group(2), m.group(3), m.group(4))
    return rows


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().split("\n")[-1].strip())
    server, guide = sys.argv[1], sys.argv[2]
    faults = labelled_faults(server)
    if len(faults) < 10:
        sys.exit(f"{server} --help-labels: only {len(faults)} fault codes read; has its "
                 "format changed?")
    rows = guide_rows(guide)
    errors = []
    for code, zh in faults.items():
        if code not in rows:
            errors.append(f"{guide}: fault {code} ({zh}) has no row in the fault table")
            continue
        line, name, meaning, action = rows[code]
        if name != zh:
            errors.append(f"{guide}:{line}: fault {code} is named {name!r}; the dashboard "
                          f"shows {zh!r} (common/result.c's label)")
        if not meaning or not action:
            errors.append(f"{guide}:{line}: fault {code} needs what it means and what to do")
    for code, (line, *_rest) in rows.items():
        if code not in faults:
            errors.append(f"{guide}:{line}: fault {code} is not a code the software reports")
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        return 1
    print(f"fault_table_test: all {len(faults)} fault codes have guidance in {guide}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
