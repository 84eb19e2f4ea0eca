#!/usr/bin/env python3
"""The host's side of the appliance guest (scripts/appliance-test): QMP commands to qemu
(screendump, quit) and shell commands in the guest through the qemu guest agent, which
is how commands reach a guest that has no network. Only the standard library, so the test
needs nothing installed on the host but python3.

  qmp.py QMP_SOCK screendump FILE.png     save the display as PNG (qemu >= 7.1)
  qmp.py QMP_SOCK quit
  qmp.py QMP_SOCK tap X Y W H              a one-finger tap at pixel (X, Y) of a W x H display,
                                          through the multitouch device (as on the Pi)
  qmp.py QMP_SOCK hold X Y W H MS          the same finger held down MS milliseconds (the
                                          operator corner wants three seconds)
  qmp.py --agent QGA_SOCK wait SECONDS     wait until the guest agent answers
  qmp.py --agent QGA_SOCK sh 'COMMAND'     run /bin/sh -c COMMAND; its output and status
  qmp.py --check-png FILE.png              fail if the image is one flat colour
"""

import base64
import json
import socket
import struct
import sys
import time
import zlib


def connect(path, timeout):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s, s.makefile("rwb")


def call(f, execute, arguments=None):
    msg = {"execute": execute}
    if arguments is not None:
        msg["arguments"] = arguments
    f.write(json.dumps(msg).encode() + b"\n")
    f.flush()
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("socket closed")
        reply = json.loads(line)
        # QMP events arrive between replies; only a return or an error answers us.
        if "return" in reply:
            return reply["return"]
        if "error" in reply:
            raise RuntimeError(f"{execute}: {reply['error']}")


def qmp(path, args):
    s, f = connect(path, 30)
    with s:
        json.loads(f.readline())  # the greeting
        call(f, "qmp_capabilities")
        if args[0] == "screendump":
            call(f, "screendump", {"filename": args[1], "format": "png"})
        elif args[0] == "quit":
            call(f, "quit")
        elif args[0] == "tap":
            tap(f, *(int(a) for a in args[1:5]))
        elif args[0] == "hold":
            tap(f, *(int(a) for a in args[1:5]), hold_ms=int(args[5]))
        else:
            raise SystemExit(f"unknown QMP command {args[0]}")


def tap(f, x, y, width, height, hold_ms=150):
    """A finger down at (x, y), held hold_ms, and up: one multitouch contact in slot 0. qemu
    turns "begin" and "end" into ABS_MT_SLOT + ABS_MT_TRACKING_ID with the id given, so the
    end carries -1 (the kernel's "contact lifted") and every contact a fresh id (the kernel
    drops an event that repeats the slot's last value). qemu sends a SYN_REPORT after each
    event list; its absolute axes run 0..0x7fff over the display."""
    ax = x * 0x7FFF // max(1, width - 1)
    ay = y * 0x7FFF // max(1, height - 1)
    contact = int(time.time() * 1000) % 30000 + 1

    def mtt(kind, tracking_id, axis="x", value=ax):
        # qemu's schema wants an axis and a value on every multitouch event.
        return {"type": "mtt", "data": {"type": kind, "slot": 0, "tracking-id": tracking_id,
                                        "axis": axis, "value": value}}

    call(f, "input-send-event", {"events": [
        mtt("begin", contact),
        mtt("data", contact, "x", ax),
        mtt("data", contact, "y", ay),
        {"type": "btn", "data": {"down": True, "button": "touch"}},
    ]})
    time.sleep(hold_ms / 1000)
    call(f, "input-send-event", {"events": [
        mtt("end", -1),
        {"type": "btn", "data": {"down": False, "button": "touch"}},
    ]})


def agent_sync(path, timeout):
    s, f = connect(path, timeout)
    # guest-sync-delimited: a 0xff byte before the reply flushes whatever a previous
    # client left half-read in the channel.
    token = int(time.time() * 1000) % 2**31
    f.write(b"\xff" + json.dumps({"execute": "guest-sync-delimited",
                                  "arguments": {"id": token}}).encode() + b"\n")
    f.flush()
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("agent closed")
        line = line.lstrip(b"\xff").strip()
        if not line:
            continue
        try:
            if json.loads(line).get("return") == token:
                return s, f
        except ValueError:
            continue


def agent_wait(path, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            s, _ = agent_sync(path, 5)
            s.close()
            return 0
        except (OSError, ConnectionError):
            time.sleep(1)
    return 1


def agent_run(path, command, timeout=600):
    """/bin/sh -c COMMAND in the guest: (exit status, stdout bytes, stderr bytes)."""
    s, f = agent_sync(path, 30)
    with s:
        pid = call(f, "guest-exec", {"path": "/bin/sh", "arg": ["-c", command],
                                     "capture-output": True})["pid"]
        deadline = time.monotonic() + timeout
        while True:
            st = call(f, "guest-exec-status", {"pid": pid})
            if st.get("exited"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"guest command timed out: {command}")
            time.sleep(0.2)
    err = base64.b64decode(st.get("err-data", ""))
    if st.get("out-truncated") or st.get("err-truncated"):
        err += b"(guest output truncated by the agent)\n"
    code = st.get("exitcode", 128 + st.get("signal", 0))
    return code, base64.b64decode(st.get("out-data", "")), err


def agent_sh(path, command, timeout=600):
    code, out, err = agent_run(path, command, timeout)
    sys.stdout.buffer.write(out)
    sys.stderr.buffer.write(err)
    return code


def png_rows(path):
    """The RGB(A) rows of a non-interlaced 8-bit PNG (what qemu's screendump writes)."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit(f"{path}: not a PNG")
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    width, height, depth, colour = ihdr[0], ihdr[1], ihdr[2], ihdr[3]
    if depth != 8 or colour not in (2, 6):
        raise SystemExit(f"{path}: unexpected PNG format (depth {depth}, colour {colour})")
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def check_png(path):
    width, height, bpp, rows = png_rows(path)
    colours = set()
    for row in rows[:: max(1, height // 60)]:
        for x in range(0, width * bpp, bpp * max(1, width // 80)):
            colours.add(row[x:x + 3])
    print(f"{path}: {width}x{height}, {len(colours)} colours sampled")
    return 0 if len(colours) >= 3 else 1


def main(argv):
    if argv[0] == "--agent":
        path, verb = argv[1], argv[2]
        if verb == "wait":
            return agent_wait(path, float(argv[3]))
        if verb == "sh":
            return agent_sh(path, argv[3])
        raise SystemExit(f"unknown agent verb {verb}")
    if argv[0] == "--check-png":
        return check_png(argv[1])
    qmp(argv[0], argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
