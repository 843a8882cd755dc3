#!/usr/bin/env python3
"""Markdown table of medians from bench/run.sh's results.tsv.

    report.py WORK/results.tsv [--dataset NAME] [--missing WORK/missing.tsv]

MiB = 2^20 bytes. Throughput is the dataset's apparent size (du -sb) over the
wall time, computed per run, then the median is taken. The initial backup
reads the generated tree; the restore writes the mutated one. `limit` is the
baselines' column (tar | zstd for backup, parallel tar -x + sync for
restore), not a backup tool. A results file from before the `dataset` column
is read as one dataset.
"""
import argparse
import csv
import statistics
import sys

MiB = 1 << 20
TOOLS = ["lifeboat", "restic", "rustic", "borg", "limit"]
PEERS = ["restic", "rustic", "borg"]


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
    secs, b = num(r, secs_key), num(r, bytes_key)
    return None if secs is None or b is None else b / MiB / max(secs, 0.01)


def scaled(r, key, div):
    v = num(r, key)
    return None if v is None else v / div


def plus(r, a, b):
    x, y = num(r, a), num(r, b)
    return None if x is None or y is None else x + y


def fmt(v, digits):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tsv")
    ap.add_argument("--dataset")
    ap.add_argument("--missing", help="tool<TAB>reason lines: peers that could not be measured")
    a = ap.parse_args()
    rows = load(a.tsv)
    if a.dataset:
        rows = [r for r in rows if r.get("dataset", a.dataset) == a.dataset]
    by_tool = {t: [r for r in rows if r["tool"] == t] for t in TOOLS}
    tools = [t for t in TOOLS if by_tool[t]]
    missing = []
    if a.missing:
        with open(a.missing) as f:
            missing = [line.rstrip("\n").split("\t", 1) for line in f if line.strip()]
    if not tools:
        sys.exit("no results in " + a.tsv + (f" for dataset {a.dataset}" if a.dataset else ""))

    metrics = [
        # (label, function of a row, digits)
        ("initial backup: time (s)", lambda r: num(r, "b1_s"), 2),
        ("initial backup: throughput (MiB/s)", lambda r: per_s(r, "data_bytes", "b1_s"), 0),
        ("initial backup: CPU (%)", lambda r: num(r, "b1_cpu_pct"), 0),
        ("initial backup: peak RSS (MiB)", lambda r: scaled(r, "b1_rss_kib", 1024), 0),
        ("second backup: time (s)", lambda r: num(r, "b2_s"), 2),
        ("second backup: added to repository (MiB, du)", lambda r: scaled(r, "added_bytes", MiB), 1),
        ("repository after the initial backup (MiB)", lambda r: scaled(r, "repo1_bytes", MiB), 1),
        ("repository after both backups (MiB)", lambda r: scaled(r, "repo2_bytes", MiB), 1),
        ("full restore: time (s)", lambda r: num(r, "restore_s"), 2),
        ("full restore: throughput (MiB/s)", lambda r: per_s(r, "data2_bytes", "restore_s"), 0),
        ("full restore: CPU (%)", lambda r: num(r, "restore_cpu_pct"), 0),
        ("full restore: peak RSS (MiB)", lambda r: scaled(r, "restore_rss_kib", 1024), 0),
        # Lifeboat's restore ends with a syncfs; the peers leave the
        # writeback to the kernel. This row times the restore until its
        # data is on disk, for every tool alike.
        ("full restore + `sync -f`: time (s)", lambda r: plus(r, "restore_s", "restore_sync_s"), 2),
        # The S3 step backs up the mutated tree into a fresh bucket repository.
        ("S3 (loopback) backup: time (s)", lambda r: num(r, "s3_backup_s"), 2),
        ("S3 (loopback) backup: throughput (MiB/s)", lambda r: per_s(r, "data2_bytes", "s3_backup_s"), 0),
        ("S3 (loopback) backup: peak RSS (MiB)", lambda r: scaled(r, "s3_backup_rss_kib", 1024), 0),
        ("S3 (loopback) full restore: time (s)", lambda r: num(r, "s3_restore_s"), 2),
        ("S3 (loopback) full restore: throughput (MiB/s)", lambda r: per_s(r, "data2_bytes", "s3_restore_s"), 0),
        ("S3 (loopback) full restore: peak RSS (MiB)", lambda r: scaled(r, "s3_restore_rss_kib", 1024), 0),
    ]
    medians = {}
    heads = [t + (" ¹" if t == "limit" else "") for t in tools]
    print("| step | " + " | ".join(heads) + " |")
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
    if "limit" in tools:
        print("¹ not a backup tool: the baselines. Backup: `tar -cSf - DATA | zstd -T$(nproc) -3 | wc -c` "
              "(its output size is the repository row). Restore: the mutated tree as one tar of its directories "
              "and $(nproc) uncompressed tars of its files balanced by bytes; `tar -xf` of the directories, "
              "then of the file tars in parallel, into an empty directory, then `sync -f`; its `meta-diff` is the directories' mtimes, which the tars' parallel writes into "
              "the same directories change after one tar has set them.")
        print()
    for tool, reason in missing:
        print(f"**Not measured: {tool}** — {reason}.")
    if missing:
        print()

    lb = by_tool.get("lifeboat") or []
    rep = med(lb, lambda r: scaled(r, "lifeboat_reported_added", MiB))
    unch = med(lb, lambda r: num(r, "lifeboat_files_unchanged"))
    if rep is not None:
        print(f"Lifeboat's own stats for the second backup (median): `bytes_added` {rep:,.1f} MiB, "
              f"`files_unchanged` {unch:,.0f} (files its files cache let it skip reading).")
        print()

    def m(label, t):
        return medians.get((label, t))

    def ratio(label, other):
        a, b = m(label, "lifeboat"), m(label, other)
        return f"{a / b:.2f}×" if a and b else "–"

    if "lifeboat" in tools:
        for other in PEERS:
            if other not in tools:
                continue
            goal = {"restic": " (goal: ≥ 2×)", "rustic": " (goal: ≥ 1.5×)"}.get(other, "")
            print(f"- Throughput lifeboat / {other}: initial backup "
                  f"{ratio('initial backup: throughput (MiB/s)', other)}, full restore "
                  f"{ratio('full restore: throughput (MiB/s)', other)}{goal}.")
            a, b = m("full restore + `sync -f`: time (s)", "lifeboat"), m("full restore + `sync -f`: time (s)", other)
            if a and b:
                print(f"  Restore until on disk (restore + `sync -f`), lifeboat / {other}: {b / a:.2f}×.")
        a, b = m("second backup: time (s)", "lifeboat"), m("second backup: time (s)", "restic")
        if a and b:
            print(f"- Second backup time lifeboat / restic: {a / b:.2f} (goal: ≤ 0.5).")
        sizes = {t: m("repository after both backups (MiB)", t) for t in PEERS if t in tools}
        sizes = {t: v for t, v in sizes.items() if v}
        own = m("repository after both backups (MiB)", "lifeboat")
        if sizes and own:
            t = min(sizes, key=sizes.get)
            print(f"- Repository lifeboat / smallest peer ({t}): {own / sizes[t]:.2f} "
                  f"({own:,.1f} against {sizes[t]:,.1f} MiB; goal: ≤ 1).")
        if "limit" in tools:
            for step in ("initial backup", "full restore"):
                a, b = m(f"{step}: time (s)", "lifeboat"), m(f"{step}: time (s)", "limit")
                if a and b:
                    print(f"- {step[0].upper() + step[1:]} time lifeboat / limit: {a / b:.2f}× (goal: ≤ 1.3×).")
        for other in ("restic", "rustic"):
            if m("S3 (loopback) backup: throughput (MiB/s)", other):
                print(f"- Throughput lifeboat / {other} on S3 (loopback): backup "
                      f"{ratio('S3 (loopback) backup: throughput (MiB/s)', other)}, full restore "
                      f"{ratio('S3 (loopback) full restore: throughput (MiB/s)', other)}.")
    n = {len(by_tool[t]) for t in tools}
    print()
    print(f"Medians over {'/'.join(str(x) for x in sorted(n))} run(s) per tool; raw numbers in results.tsv.")


if __name__ == "__main__":
    main()
