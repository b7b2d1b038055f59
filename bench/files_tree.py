#!/usr/bin/env python3
"""Writes the world-like tree bench/files.sh backs up: the same bytes on
every run (a fixed seed), written fast (slices of two pools, no per-byte
work in Python).

Usage: files_tree.py DIR TOTAL_MIB SMALL_FILES

- SMALL_FILES files of 1 to 64 KiB (uniform), 100 to a directory under
  `world/`, `playerdata/` and `plugins/`: a third text-like (compressible
  about 4x, like configs, NBT and JSON), a third region-like (4 KiB
  sectors, each a random-length run of random bytes padded with zeros, as
  a region file's compressed chunks are), a third random (already
  compressed: PNGs, jars).
- Then region-like files of 200 to 400 MiB (the last one takes what is
  left, so the tree is TOTAL_MIB in all) under `world/region-big/`.

Prints the file count and the bytes written.
"""

import os
import random
import sys

SEED = 17
POOL = 64 << 20  # random bytes: more than zstd -3's window, so no repeats in reach
SECTOR = 4096
VOCABULARY = (
    "minecraft:stone minecraft:dirt minecraft:grass_block minecraft:oak_log "
    "Pos Motion Rotation Health FallDistance Inventory Slot Count id tag "
    "true false 0 1 64 -1 0.5 spawn-protection=16 view-distance=10 "
    "level-name=world gamemode=survival difficulty=normal max-players=20 "
    '{ } [ ] : , "name" "uuid" "lastKnownName" "x" "y" "z"'
).split()


def main():
    root, total_mib, small = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(SEED)
    noise = memoryview(rng.randbytes(POOL))
    text = " ".join(rng.choice(VOCABULARY) for _ in range(800_000)).encode()
    text = memoryview(text * (POOL // len(text) + 1))[:POOL]
    zeros = bytes(SECTOR)

    def slice_of(pool, n):
        start = rng.randrange(0, POOL - n)
        return pool[start : start + n]

    def region(out, n):
        """`n` bytes of region-like sectors: data then zero padding."""
        left = n
        while left > 0:
            size = min(SECTOR, left)
            data = rng.randrange(size // 4, size + 1)
            out.write(slice_of(noise, data))
            out.write(zeros[: size - data])
            left -= size

    def chunked(out, pool, n, step=1 << 20):
        left = n
        while left > 0:
            size = min(step, left)
            out.write(slice_of(pool, size))
            left -= size

    written = files = 0
    kinds = ("text", "region", "random")
    tops = ("world", "playerdata", "plugins")
    for i in range(small):
        directory = os.path.join(root, tops[i // 100 % 3], f"d{i // 100:03}")
        if i % 100 == 0:
            os.makedirs(directory, exist_ok=True)
        size = rng.randint(1024, 64 * 1024)
        kind = kinds[rng.randrange(3)]
        with open(os.path.join(directory, f"f{i:05}.{kind}"), "wb") as out:
            if kind == "text":
                chunked(out, text, size)
            elif kind == "region":
                region(out, size)
            else:
                chunked(out, noise, size)
        written += size
        files += 1

    left = max(0, total_mib * (1 << 20) - written)
    big = os.path.join(root, "world", "region-big")
    os.makedirs(big, exist_ok=True)
    n = 0
    while left > 0:
        size = rng.randint(200, 400) << 20
        # The last file takes the rest; never leave less than 200 MiB over.
        if left - size < 200 << 20:
            size = left
        with open(os.path.join(big, f"r.{n}.mca"), "wb") as out:
            region(out, size)
        written += size
        left -= size
        files += 1
        n += 1
    print(f"{files} files, {written} bytes")


if __name__ == "__main__":
    main()
