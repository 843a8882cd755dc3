#!/usr/bin/env python3
"""An independent reader of Lifeboat repositories, written from
docs/format.md alone (it shares no code with src/repo). tests/format_doc.rs
runs it against a repository the real binary wrote, so a format change the
document does not follow fails the tests.

  format_reader.py --supported-version
  format_reader.py REPO IDENTITY_FILE list
  format_reader.py REPO IDENTITY_FILE restore SNAPSHOT_ID TARGET

Needs `pip install pyrage zstandard blake3`.
"""
import json
import os
import struct
import sys

try:
    import blake3
    import pyrage
    import zstandard
except ImportError as e:
    sys.exit(f"format_reader.py needs pyrage, zstandard and blake3 ({e}): "
             "run `pip install pyrage zstandard blake3` (scripts/test-deps.sh does)")

SUPPORTED_VERSION = 1
ENTRY = 45
# Fields the document lists; anything else means the document is behind.
SUMMARY_FIELDS = {"version", "time", "host", "service", "paths", "tree", "stats",
                  "program", "sources", "origin", "tags"}
SOURCE_FIELDS = {"name", "kind", "files", "facts"}
NODE_FIELDS = {"path", "raw_path", "kind", "mode", "mtime_ns", "uid", "gid", "size",
               "chunks", "hash", "target", "raw_target", "secret"}
MAX_PATH = 4096
MAX_CHUNK = 64 << 20  # far above the chunker's maximum: a sanity bound


class Damaged(Exception):
    pass


def objects(repo, kind):
    """(name, bytes) of every object of a kind; names starting with `.` are ignored."""
    root = os.path.join(repo, kind)
    out = []
    for dirpath, _, names in os.walk(root):
        for n in sorted(names):
            if not n.startswith("."):
                with open(os.path.join(dirpath, n), "rb") as f:
                    out.append((n, f.read()))
    return out


def load_identities(path):
    ids = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                ids.append(pyrage.x25519.Identity.from_str(line))
    if not ids:
        raise SystemExit(f"{path} holds no age identity")
    return ids


class Repo:
    def __init__(self, path, identity_file):
        self.path = path
        with open(os.path.join(path, "config"), "rb") as f:
            self.config = json.loads(f.read())
        if self.config.get("format") != "lifeboat-repository":
            raise SystemExit(f"{path} is not a Lifeboat repository")
        if self.config.get("version") != SUPPORTED_VERSION:
            raise SystemExit(f"format version {self.config.get('version')}; this reader reads {SUPPORTED_VERSION}")
        ids = load_identities(identity_file)
        master = None
        for _, raw in objects(path, "keys"):
            obj = json.loads(raw)
            if obj.get("kind") == "write-only":
                continue  # sealed to a backup host's key, and holds no data identity
            try:
                master = json.loads(pyrage.decrypt(bytes.fromhex(obj["sealed"]), ids))
                break
            except pyrage.DecryptError:
                continue
        if master is None:
            raise SystemExit("no key object opens with that identity")
        # Every key generation: the current one, then those `keys rotate`
        # kept in `older`. Objects open with whichever generation sealed them.
        generations = [master] + master.get("older", [])
        ident = pyrage.x25519.Identity.from_str
        self.data = [ident(g["data_identity"]) for g in generations]
        self.meta = [ident(g["meta_identity"]) for g in generations]
        self.chunk_keys = [bytes.fromhex(g["chunk_key"]) for g in generations]
        if any(len(k) != 32 for k in self.chunk_keys):
            raise Damaged("chunk key is not 32 bytes")
        self.index = {}
        for name, raw in objects(path, "index"):
            self._read_index(name, pyrage.decrypt(raw, self.meta))
        self.packs = {}

    def _read_index(self, name, plain):
        if plain[:8] != b"LBINDEX1":
            raise Damaged(f"index {name}: bad magic")
        pos = 8
        while pos < len(plain):
            if pos + 36 > len(plain):
                raise Damaged(f"index {name}: truncated pack record")
            pack = plain[pos:pos + 32].hex()
            (count,) = struct.unpack_from("<I", plain, pos + 32)
            pos += 36
            if pos + count * ENTRY > len(plain):
                raise Damaged(f"index {name}: truncated entries")
            for i in range(count):
                e = plain[pos + i * ENTRY:pos + (i + 1) * ENTRY]
                offset, stored, raw_len = struct.unpack_from("<III", e, 32)
                flag = e[44]
                if flag > 1:
                    raise Damaged(f"index {name}: flag {flag}")
                self.index.setdefault(e[:32], (pack, offset, stored, raw_len, flag))
            pos += count * ENTRY

    def snapshots(self):
        out = []
        for name, raw in objects(self.path, "snapshots"):
            s = json.loads(pyrage.decrypt(raw, self.meta))
            unknown = set(s) - SUMMARY_FIELDS
            if unknown:
                raise Damaged(f"snapshot {name}: fields the document does not describe: {sorted(unknown)}")
            for rec in s.get("sources", []):
                if set(rec) - SOURCE_FIELDS:
                    raise Damaged(f"snapshot {name}: undocumented source fields {sorted(set(rec) - SOURCE_FIELDS)}")
            s["id"] = name
            out.append(s)
        return sorted(out, key=lambda s: (s["time"], s["id"]))

    def pack(self, pack):
        if pack not in self.packs:
            with open(os.path.join(self.path, "data", pack[:2], pack), "rb") as f:
                plain = pyrage.decrypt(f.read(), self.data)
            if plain[:8] != b"LBPACK01" or plain[-8:] != b"LBTRAIL1":
                raise Damaged(f"pack {pack}: bad magic")
            self.packs = {pack: plain}  # one at a time keeps memory flat
        return self.packs[pack]

    def chunk(self, cid_hex):
        cid = bytes.fromhex(cid_hex)
        if cid not in self.index:
            raise Damaged(f"chunk {cid_hex} is not in the index")
        pack, offset, stored, raw_len, flag = self.index[cid]
        if raw_len > MAX_CHUNK or stored > MAX_CHUNK:
            raise Damaged(f"chunk {cid_hex}: implausible length")
        plain = self.pack(pack)
        data = plain[offset:offset + stored]
        if len(data) != stored:
            raise Damaged(f"chunk {cid_hex}: outside its pack")
        if flag == 1:
            data = zstandard.ZstdDecompressor().decompress(data, max_output_size=raw_len)
        if len(data) != raw_len or not any(
                blake3.blake3(data, key=k).digest() == cid for k in self.chunk_keys):
            raise Damaged(f"chunk {cid_hex} is damaged")
        return data

    def tree(self, snap):
        stream = b"".join(self.chunk(c) for c in snap["tree"])
        nodes = [json.loads(line) for line in stream.split(b"\n") if line]
        for n in nodes:
            unknown = set(n) - NODE_FIELDS
            if unknown:
                raise Damaged(f"node {n.get('path')!r}: undocumented fields {sorted(unknown)}")
        return nodes


def raw(node, text, hexed):
    if node.get(hexed) is not None:
        return bytes.fromhex(node[hexed])
    return node[text].encode("utf-8")


def check_paths(nodes):
    """The checks of "A tree is untrusted", before anything is written."""
    paths = [raw(n, "path", "raw_path") for n in nodes]
    kinds = {}
    for n, p in zip(nodes, paths):
        if not p or len(p) > MAX_PATH or p.startswith(b"/") or b"\0" in p:
            raise Damaged(f"unsafe path {p!r}")
        if any(c in (b"", b".", b"..") for c in p.split(b"/")):
            raise Damaged(f"unsafe path {p!r}")
        if p in kinds:
            raise Damaged(f"path listed twice: {p!r}")
        kinds[p] = n["kind"]
    for p in paths:
        parts = p.split(b"/")
        for i in range(1, len(parts)):
            if kinds.get(b"/".join(parts[:i]), "dir") != "dir":
                raise Damaged(f"{p!r} is below a file or symlink")
    return paths


def restore(repo, snap, target):
    nodes = repo.tree(snap)
    paths = check_paths(nodes)
    os.makedirs(target, exist_ok=True)
    if os.listdir(target):
        raise SystemExit(f"{target} is not empty")
    tb = os.fsencode(target)
    dest = [os.path.join(tb, p) for p in paths]
    as_root = os.geteuid() == 0
    for n, d in zip(nodes, dest):
        parent = os.path.dirname(d)
        if not os.path.isdir(parent):
            os.makedirs(parent)
        if n["kind"] == "dir":
            os.mkdir(d, 0o700)
        elif n["kind"] == "file":
            fd = os.open(d, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            h, size = blake3.blake3(), 0
            with os.fdopen(fd, "wb") as f:
                for c in n.get("chunks", []):
                    data = repo.chunk(c)
                    h.update(data)
                    size += len(data)
                    f.write(data)
            if size != n.get("size", 0) or h.hexdigest() != n.get("hash"):
                raise Damaged(f"{d!r} does not match its recorded size and hash")
            if as_root:
                os.chown(d, n["uid"], n["gid"], follow_symlinks=False)
            m = n["mode"] & 0o7777
            if n.get("secret") and m & 0o027:
                m &= 0o700
            os.chmod(d, m)
            os.utime(d, ns=(n["mtime_ns"], n["mtime_ns"]))
        elif n["kind"] != "symlink":
            raise Damaged(f"unknown kind {n['kind']!r}")
    for n, d in zip(nodes, dest):
        if n["kind"] == "symlink":
            os.symlink(raw(n, "target", "raw_target"), d)
    # Deepest first, so a directory's mtime is set after its contents.
    for n, d in reversed(list(zip(nodes, dest))):
        if n["kind"] == "file":
            continue
        if as_root:
            os.chown(d, n["uid"], n["gid"], follow_symlinks=False)
        if n["kind"] == "dir":
            os.chmod(d, n["mode"] & 0o7777)
        os.utime(d, ns=(n["mtime_ns"], n["mtime_ns"]), follow_symlinks=False)
    return nodes


def main(argv):
    if argv[1:] == ["--supported-version"]:
        print(SUPPORTED_VERSION)
        return 0
    if len(argv) < 4:
        sys.exit(__doc__)
    repo = Repo(argv[1], argv[2])
    if argv[3] == "list":
        for s in repo.snapshots():
            print(json.dumps({"id": s["id"], "time": s["time"], "service": s["service"],
                              "paths": s["paths"], "sources": s.get("sources", [])}))
        return 0
    if argv[3] == "restore" and len(argv) == 6:
        snaps = [s for s in repo.snapshots() if s["id"] == argv[4]]
        if not snaps:
            sys.exit(f"no snapshot {argv[4]}")
        nodes = restore(repo, snaps[0], argv[5])
        print(json.dumps({"restored": len(nodes),
                          "secrets": [n["path"] for n in nodes if n.get("secret")]}))
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Damaged as e:
        sys.exit(f"damaged: {e}")
