"""The touchscreen as the harness sees it: QMP screendumps compared with what the host draws
for the same config (`cargo run --example screens -- --idle`, slint's software renderer),
by structure, not pixels (../screens.py says how); a pixel's colour; the QR on a screen."""

import os
import subprocess

import qmp as qmplib
import screens

from .inputs import HERE, ROOT

# The least likeness (NCC of grey 80x48 blocks) that counts as the same screen as the idle
# screen; measured: 1.000 for the idle screen, 0.06..0.12 for the others.
IDLE_NCC = 0.8
# The first product tile's middle on the 800x480 idle screen (screen-idle.png).
TILE = (200, 240)


class HostIdle:
    """The host's drawing of the idle screen for scripts/appliance/config.toml, once per run
    (art/host-idle.png)."""

    def __init__(self, art):
        self.png = art / "host-idle.png"

    def path(self):
        if not self.png.exists():
            self.png.parent.mkdir(parents=True, exist_ok=True)
            # The host's own libraries, not the kiosk build's unpacked ones.
            env = {k: v for k, v in os.environ.items() if k not in
                   ("PKG_CONFIG_PATH", "PKG_CONFIG_SYSROOT_DIR", "LIBRARY_PATH", "LD_LIBRARY_PATH")}
            r = subprocess.run(["cargo", "run", "--quiet", "--example", "screens", "--", "--idle",
                                str(HERE / "config.toml"), str(self.png)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                raise AssertionError(f"the host could not draw the idle screen for the test config:\n{r.stderr[-3000:]}")
        return self.png

    def ncc(self, shot):
        return screens.ncc(screens.blocks(str(self.path())), screens.blocks(str(shot)))

    def side_by_side(self, shot, out):
        screens.side_by_side(str(self.path()), str(shot), str(out))


def pixel(shot, x, y):
    _, _, bpp, rows = qmplib.png_rows(str(shot))
    return tuple(rows[y][x * bpp:x * bpp + 3])


def pixel_is(shot, x, y, colour):
    """Orange (a current operator tab, #f7931a), red (the Exit tab, #b03a2e-ish), green (the
    PIN pad's OK, #3fbf5f)."""
    r, g, b = pixel(shot, x, y)
    return {"orange": r >= 200 and 100 <= g <= 190 and b <= 80,
            "red": r >= 140 and g <= 100 and b <= 100,
            "green": g >= 150 and r <= 120 and b <= 140}[colour]


def region_diff(a, b, x0, y0, x1, y1):
    _, _, ga = screens.grey(str(a))
    _, _, gb = screens.grey(str(b))
    diff = [abs(ga[y][x] - gb[y][x]) for y in range(y0, y1) for x in range(x0, x1)]
    return sum(diff) / len(diff)


def flat(shot):
    """Whether the image is one flat colour."""
    return qmplib.check_png(str(shot)) != 0


def qr_text(shot):
    """The first QR code zbarimg finds on the screen, without a lightning: prefix, or None."""
    r = subprocess.run(["zbarimg", "--quiet", "--raw", str(shot)], capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.strip():
        return None
    text = r.stdout.splitlines()[0].strip()
    for p in ("lightning:", "LIGHTNING:"):
        if text.startswith(p):
            text = text[len(p):]
    return text
