#!/usr/bin/env python3
"""A small-file tree for Lifeboat's benchmarks, built from files every Debian
machine has: documentation, man pages, the Perl and Python libraries, time
zones, C headers, locales.

    smallfiles.py id     [SEED] [SCALE]       print the selection's identity (for caching)
    smallfiles.py gen    DIR [SEED] [SCALE]   copy the selection into DIR (which must not exist)
    smallfiles.py mutate DIR [SEED] [SCALE]   apply the "next night" change in place
    smallfiles.py split  DIR N OUT_PREFIX     write N file lists (OUT_PREFIX.0 ...) of DIR's
                                              entries, balanced by bytes, for a parallel
                                              `tar` baseline

Selection: every regular file of at most MAX_FILE bytes under ROOTS (sorted
walk, symlinks not followed, unreadable files left out); when there are more
than 40,000 x SCALE of them, the ones whose path has the smallest SHA-256
(a uniform, deterministic sample over all roots). Each file is copied to
DIR/<its absolute path without the leading />, with its mode's permission
bits. The same machine image gives the same tree; `id` names it (the list of
paths and sizes), so that a cached copy is regenerated when packages change.

The mutation (same SEED, same tree: same change): of the files, 2 % get 64
to 4,096 bytes of new text inserted at a random offset (an edit), 1 % only a
new mtime (content unchanged, as after a package reinstall), 0.5 % are
deleted; 1 % as many new files (1-32 KiB of text) appear, half next to
existing files, half in a new directory `new-night/`.
"""
import glob
import hashlib
import os
import random
import stat
import sys

ROOT_GLOBS = [
    "/usr/share/doc", "/usr/share/man", "/usr/share/perl", "/usr/share/perl5",
    "/usr/lib/*/perl", "/usr/lib/*/perl5", "/usr/lib/*/perl-base",
    "/usr/lib/python3", "/usr/lib/python3.*", "/usr/share/zoneinfo", "/usr/include",
    "/usr/share/i18n", "/usr/share/locale",
]
MAX_FILE = 1 << 20
BASE_FILES = 40000
WORDS = ("the of and to in is that for it as with was on be by this are or from at "
         "file backup restore night change package library module function return value "
         "error string list table index chunk pack tree snapshot repository server").split()


def roots():
    seen, out = set(), []
    for g in ROOT_GLOBS:
        for p in sorted(glob.glob(g)):
            rp = os.path.realpath(p)
            if os.path.isdir(rp) and not os.path.islink(p) and rp not in seen:
                seen.add(rp)
                out.append(p)
    # A root inside another root (none today) would be walked twice.
    return [r for r in out if not any(r != o and r.startswith(o + "/") for o in out)]


def candidates():
    """(path, size) of every eligible file, sorted by path."""
    out = []
    for root in roots():
        for d, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                p = os.path.join(d, name)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_size <= MAX_FILE and os.access(p, os.R_OK):
                    out.append((p, st.st_size))
    out.sort()
    return out


def selection(scale):
    cands = candidates()
    cap = max(1, int(BASE_FILES * scale))
    if len(cands) > cap:
        key = lambda c: hashlib.sha256(c[0].encode("utf-8", "surrogateescape")).digest()
        cands = sorted(sorted(cands, key=key)[:cap])
    return cands


def ident(sel, seed):
    h = hashlib.sha256()
    with open(__file__, "rb") as f:
        h.update(f.read())
    h.update(str(seed).encode())
    for p, s in sel:
        h.update(p.encode("utf-8", "surrogateescape") + b"\0" + str(s).encode() + b"\n")
    return h.hexdigest()


def text(r, n):
    words, size = [], 0
    while size < n:
        w = r.choice(WORDS)
        words.append(w)
        size += len(w) + 1
        if r.random() < 0.08:
            words.append("\n")
    return (" ".join(words)[:n]).encode()


def gen(dest, sel):
    if os.path.exists(dest):
        sys.exit(f"{dest} exists; give a new directory")
    made = set()
    nbytes = 0
    for p, _ in sel:
        t = os.path.join(dest, p.lstrip("/"))
        d = os.path.dirname(t)
        if d not in made:
            os.makedirs(d, exist_ok=True)
            made.add(d)
        try:
            with open(p, "rb") as src:
                data = src.read()
        except OSError as e:
            # The selection only holds readable files; one that vanished since
            # is an error, since the tree would no longer match its id.
            sys.exit(f"cannot read {p}: {e} (run again: the selection is recomputed)")
        with open(t, "wb") as out:
            out.write(data)
        os.chmod(t, os.lstat(p).st_mode & 0o777 | 0o200)
        nbytes += len(data)
    ndirs = sum(1 for _ in os.walk(dest))
    print(f"smallfiles: {len(sel)} files, {ndirs} directories, {nbytes / (1 << 20):.1f} MiB in {dest}")


def all_files(top):
    out = []
    for d, dirs, files in os.walk(top):
        dirs.sort()
        out.extend(os.path.join(d, f) for f in sorted(files))
    out.sort()
    return out


def mutate(top, seed):
    r = random.Random(seed * 7919 + 1)
    files = all_files(top)
    n = len(files)
    order = list(range(n))
    r.shuffle(order)
    n_edit, n_touch, n_del, n_new = max(1, n // 50), max(1, n // 100), max(1, n // 200), max(2, n // 100)
    edit = [files[i] for i in order[:n_edit]]
    touch = [files[i] for i in order[n_edit:n_edit + n_touch]]
    delete = [files[i] for i in order[n_edit + n_touch:n_edit + n_touch + n_del]]
    for p in edit:
        with open(p, "rb") as f:
            data = f.read()
        at = r.randint(0, len(data))
        with open(p, "wb") as f:
            f.write(data[:at] + text(r, r.randint(64, 4096)) + data[at:])
    for p in touch:
        os.utime(p)
    for p in delete:
        os.unlink(p)
    dirs = sorted({os.path.dirname(files[i]) for i in order[-n_new:]})
    for i in range(n_new):
        if i % 2:
            d = os.path.join(top, "new-night", f"d{i % 16:02d}")
        else:
            d = dirs[i % len(dirs)]
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"night-{seed}-{i:05d}.txt"), "wb") as f:
            f.write(text(r, r.randint(1024, 32768)))
    print(f"smallfiles mutate: {n_edit} edited, {n_touch} touched, {n_del} deleted, {n_new} added (of {n})")


def split(top, parts, prefix):
    """N lists of paths relative to / (dirs first, each file in exactly one),
    greedy by bytes so every writer has about the same work."""
    entries = []
    dirs = []
    for d, ds, files in os.walk(top):
        ds.sort()
        dirs.append(d)
        for f in sorted(files):
            p = os.path.join(d, f)
            entries.append((os.lstat(p).st_size + 4096, p))
    loads = [0] * parts
    lists = [[] for _ in range(parts)]
    for size, p in sorted(entries, reverse=True):
        i = loads.index(min(loads))
        loads[i] += size
        lists[i].append(p)
    # Directories get a list of their own, extracted before the files: two
    # tars creating the same parents at once race (ENOENT).
    with open(f"{prefix}.dirs", "w", encoding="utf-8", errors="surrogateescape") as f:
        for p in dirs:
            f.write(p.lstrip("/") + "\n")
    for i in range(parts):
        with open(f"{prefix}.{i}", "w", encoding="utf-8", errors="surrogateescape") as f:
            for p in sorted(lists[i]):
                f.write(p.lstrip("/") + "\n")


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    mode = a[0]
    if mode == "split":
        if len(a) != 4:
            sys.exit(__doc__)
        split(a[1], int(a[2]), a[3])
        return
    if mode == "id":
        seed = int(a[1]) if len(a) > 1 else 20240601
        scale = float(a[2]) if len(a) > 2 else 1.0
        print(ident(selection(scale), seed))
        return
    if mode not in ("gen", "mutate") or len(a) < 2:
        sys.exit(__doc__)
    seed = int(a[2]) if len(a) > 2 else 20240601
    scale = float(a[3]) if len(a) > 3 else 1.0
    if mode == "gen":
        gen(a[1], selection(scale))
    else:
        mutate(a[1], seed)


if __name__ == "__main__":
    main()
