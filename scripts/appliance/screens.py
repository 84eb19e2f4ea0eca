#!/usr/bin/env python3
"""Looks at screendumps for scripts/appliance-test: compares the guest's screen with what the
host draws for the same config, and reads single pixels and regions. Standard library only
(the PNG reader is qmp.py's).

  screens.py ncc A.png B.png [MIN]         the structural likeness of two screens, -1..1;
                                            fails when below MIN
  screens.py side-by-side A.png B.png OUT  both screens next to each other, for a person
  screens.py pixel FILE X Y                the pixel's "R G B"
  screens.py region-diff A B X0 Y0 X1 Y1   the mean absolute grey difference in a box

Structure, not pixels: both images become grey, are averaged down to 80x48 blocks of 10x10
pixels (text becomes a smudge of its line, antialiasing and font hinting vanish), and the
normalised cross-correlation of the two 3840 block values says how alike the layouts are:
1 for the same light and dark areas in the same places, near 0 for unrelated screens. The
threshold is the script's, measured (docs/developer/appliance.md).
"""

import struct
import sys
import zlib

from qmp import png_rows

BW, BH = 80, 48


def grey(path):
    """The image as rows of grey values (0..255)."""
    width, height, bpp, rows = png_rows(path)
    out = []
    for row in rows:
        out.append([(299 * row[i] + 587 * row[i + 1] + 114 * row[i + 2]) // 1000
                    for i in range(0, width * bpp, bpp)])
    return width, height, out


def blocks(path):
    width, height, g = grey(path)
    if (width, height) != (800, 480):
        raise SystemExit(f"{path}: {width}x{height}, want the panel's 800x480")
    sx, sy = width // BW, height // BH
    out = []
    for by in range(BH):
        for bx in range(BW):
            total = 0
            for y in range(by * sy, (by + 1) * sy):
                total += sum(g[y][bx * sx:(bx + 1) * sx])
            out.append(total / (sx * sy))
    return out


def ncc(a, b):
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    da = [x - ma for x in a]
    db = [x - mb for x in b]
    num = sum(x * y for x, y in zip(da, db))
    den = (sum(x * x for x in da) * sum(y * y for y in db)) ** 0.5
    return num / den if den else 0.0


def write_png(path, width, height, rgb_rows):
    raw = b"".join(b"\x00" + bytes(r) for r in rgb_rows)

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 6)))
        f.write(chunk(b"IEND", b""))


def rgb_rows(path):
    width, height, bpp, rows = png_rows(path)
    if bpp == 3:
        return width, height, [bytearray(r) for r in rows]
    return width, height, [bytearray(b for i in range(0, len(r), 4) for b in r[i:i + 3])
                           for r in rows]


def side_by_side(a, b, out):
    wa, ha, ra = rgb_rows(a)
    wb, hb, rb = rgb_rows(b)
    gap = 8
    height = max(ha, hb)
    rows = []
    for y in range(height):
        left = ra[y] if y < ha else bytearray(3 * wa)
        right = rb[y] if y < hb else bytearray(3 * wb)
        rows.append(left + bytearray(b"\xff\x00\xff" * gap) + right)
    write_png(out, wa + gap + wb, height, rows)


def main(argv):
    verb = argv[0]
    if verb == "ncc":
        value = ncc(blocks(argv[1]), blocks(argv[2]))
        print(f"{value:.3f}")
        return 0 if len(argv) < 4 or value >= float(argv[3]) else 1
    if verb == "side-by-side":
        side_by_side(argv[1], argv[2], argv[3])
        return 0
    if verb == "pixel":
        width, height, bpp, rows = png_rows(argv[1])
        x, y = int(argv[2]), int(argv[3])
        print(*rows[y][x * bpp:x * bpp + 3])
        return 0
    if verb == "region-diff":
        x0, y0, x1, y1 = (int(v) for v in argv[3:7])
        _, _, ga = grey(argv[1])
        _, _, gb = grey(argv[2])
        diff = [abs(ga[y][x] - gb[y][x]) for y in range(y0, y1) for x in range(x0, x1)]
        print(f"{sum(diff) / len(diff):.1f}")
        return 0
    raise SystemExit(f"unknown verb {verb}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
