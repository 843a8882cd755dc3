#!/usr/bin/env python3
"""Markdown table of medians from bench/run.sh's results.tsv.

    report.py WORK/results.tsv

MiB = 2^20 bytes. Throughput is the dataset's apparent size (du -sb) over the
wall time, computed per run, then the median is taken. The initial backup
reads the generated tree; the restore writes the mutated one.
"""
import csv
import statistics
import sys

MiB = 1 << 20
TOOLS = ["lifeboat", "restic", "borg"]


def load(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def med(rows, fn):
    vals = [fn(r) for r in rows]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def num(r, key):
    """A number from an optional column (NA or absent: no value)."""
    v = r.get(key)
    return None if v in (None, "", "NA") else float(v)


def per_s(r, bytes_key, secs_key):
    secs = num(r, secs_key)
    return None if secs is None else float(r[bytes_key]) / MiB / max(secs, 0.01)


def kib_mib(r, key):
    v = num(r, key)
    return None if v is None else v / 1024


def fmt(v, digits):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rows = load(sys.argv[1])
    by_tool = {t: [r for r in rows if r["tool"] == t] for t in TOOLS}
    tools = [t for t in TOOLS if by_tool[t]]
    if not tools:
        sys.exit("no results in " + sys.argv[1])
    f = float

    metrics = [
        # (label, function of a row, digits)
        ("initial backup: time (s)", lambda r: f(r["b1_s"]), 2),
        ("initial backup: throughput (MiB/s)", lambda r: f(r["data_bytes"]) / MiB / max(f(r["b1_s"]), 0.01), 0),
        ("initial backup: CPU (%)", lambda r: f(r["b1_cpu_pct"]), 0),
        ("initial backup: peak RSS (MiB)", lambda r: f(r["b1_rss_kib"]) / 1024, 0),
        ("second backup: time (s)", lambda r: f(r["b2_s"]), 2),
        ("second backup: added to repository (MiB, du)", lambda r: f(r["added_bytes"]) / MiB, 1),
        ("repository after both backups (MiB)", lambda r: f(r["repo2_bytes"]) / MiB, 1),
        ("full restore: time (s)", lambda r: f(r["restore_s"]), 2),
        ("full restore: throughput (MiB/s)", lambda r: f(r["data2_bytes"]) / MiB / max(f(r["restore_s"]), 0.01), 0),
        ("full restore: peak RSS (MiB)", lambda r: f(r["restore_rss_kib"]) / 1024, 0),
        # The S3 step backs up the mutated tree into a fresh bucket repository.
        ("S3 (loopback) backup: time (s)", lambda r: num(r, "s3_backup_s"), 2),
        ("S3 (loopback) backup: throughput (MiB/s)", lambda r: per_s(r, "data2_bytes", "s3_backup_s"), 0),
        ("S3 (loopback) backup: peak RSS (MiB)", lambda r: kib_mib(r, "s3_backup_rss_kib"), 0),
        ("S3 (loopback) full restore: time (s)", lambda r: num(r, "s3_restore_s"), 2),
        ("S3 (loopback) full restore: throughput (MiB/s)", lambda r: per_s(r, "data2_bytes", "s3_restore_s"), 0),
        ("S3 (loopback) full restore: peak RSS (MiB)", lambda r: kib_mib(r, "s3_restore_rss_kib"), 0),
    ]
    medians = {}
    print("| step | " + " | ".join(tools) + " |")
    print("|---|" + "---:|" * len(tools))
    for label, fn, digits in metrics:
        cells = []
        for t in tools:
            m = med(by_tool[t], fn)
            medians[(label, t)] = m
            cells.append(fmt(m, digits))
        if all(medians[(label, t)] is None for t in tools):
            continue  # a step this run did not take (S3 without s3s-fs)
        print(f"| {label} | " + " | ".join(cells) + " |")

    verify = []
    for t in tools:
        vs = sorted({r["verify"] for r in by_tool[t]})
        verify.append(", ".join(vs))
    print("| restore check (content and metadata) | " + " | ".join(verify) + " |")
    s3_verify = [", ".join(sorted({r.get("s3_verify") or "NA" for r in by_tool[t]})) for t in tools]
    if any(v != "NA" for v in s3_verify):
        print("| S3 (loopback) restore check | " + " | ".join(v.replace("NA", "–") for v in s3_verify) + " |")
    print()

    lb = by_tool.get("lifeboat") or []
    rep = med(lb, lambda r: None if r["lifeboat_reported_added"] == "NA" else f(r["lifeboat_reported_added"]) / MiB)
    unch = med(lb, lambda r: None if r["lifeboat_files_unchanged"] == "NA" else int(r["lifeboat_files_unchanged"]))
    if rep is not None:
        print(f"Lifeboat's own stats for the second backup (median): `bytes_added` {rep:,.1f} MiB, "
              f"`files_unchanged` {unch:,.0f} (files its files cache let it skip reading).")
        print()

    def ratio(label, other):
        a, b = medians.get((label, "lifeboat")), medians.get((label, other))
        return f"{a / b:.2f}×" if a and b else "–"

    for other in ("restic", "borg"):
        if other in tools and "lifeboat" in tools:
            print(f"Throughput lifeboat / {other}: initial backup "
                  f"{ratio('initial backup: throughput (MiB/s)', other)}, full restore "
                  f"{ratio('full restore: throughput (MiB/s)', other)}"
                  + (" (goal: ≥ 2× both ways)" if other == "restic" else "") + ".")
    if medians.get(("S3 (loopback) backup: throughput (MiB/s)", "restic")):
        print(f"Throughput lifeboat / restic on S3 (loopback): backup "
              f"{ratio('S3 (loopback) backup: throughput (MiB/s)', 'restic')}, full restore "
              f"{ratio('S3 (loopback) full restore: throughput (MiB/s)', 'restic')}.")
    n = {len(by_tool[t]) for t in tools}
    print()
    print(f"Medians over {'/'.join(str(x) for x in sorted(n))} run(s) per tool; raw numbers in results.tsv.")


if __name__ == "__main__":
    main()
