#!/usr/bin/env python3
"""Which B-trees a store's commits write: the pages of each commit in a SQLite WAL,
named after the table or index that owns them.

    python3 tools/wal_pages.py COPY-OF-WAL SNAPSHOT-DB [LAST-N-COMMITS]

COPY-OF-WAL is a copy of `handoff.db-wal` taken right after the commits of interest
(the checkpointer restarts the WAL every 16,384 frames, so copy it soon); SNAPSHOT-DB
is a copy of the database taken at the same moment with SQLite's backup API (page
numbers are kept), for example `sqlite3.connect(db).backup(sqlite3.connect(out))`.
Only the WAL's current generation (frames carrying the header's salts) is read.
Prints the frames per commit over the last N commits (default 200) and the average
frames per commit for each B-tree. Reads files only; needs Python's sqlite3 with the
dbstat table (CPython's usually has it).
"""

import collections
import sqlite3
import struct
import sys


def commits(wal):
    """Yield, per commit, a Counter of page numbers written."""
    _magic, _ver, page_size, _seq, salt1, salt2, _c1, _c2 = struct.unpack(">8I", wal[:32])
    frame = 24 + page_size
    off, pages = 32, collections.Counter()
    while off + frame <= len(wal):
        page, db_size, s1, s2 = struct.unpack(">4I", wal[off : off + 16])
        if (s1, s2) != (salt1, salt2):
            break
        pages[page] += 1
        if db_size:
            yield pages
            pages = collections.Counter()
        off += frame


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    wal = open(sys.argv[1], "rb").read()
    last = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    owner = dict(
        (page, name)
        for name, page in sqlite3.connect(sys.argv[2]).execute("SELECT name, pageno FROM dbstat")
    )
    seen = list(commits(wal))[-last:]
    if not seen:
        sys.exit("no commit in the WAL's current generation")
    per_tree = collections.Counter()
    for c in seen:
        for page, n in c.items():
            per_tree[owner.get(page, "(new or free page)")] += n
    total = sum(per_tree.values())
    print(f"{len(seen)} commits, {total / len(seen):.1f} frames per commit")
    for name, n in per_tree.most_common():
        print(f"{n / len(seen):7.2f}  {name}")


if __name__ == "__main__":
    main()
