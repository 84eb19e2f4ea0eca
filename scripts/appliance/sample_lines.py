#!/usr/bin/env python3
"""Samples GPIO line values inside the appliance guest (scripts/appliance-test): gpio-sim's
sysfs files /sys/devices/platform/DEV/CHIP/sim_gpioN/value, every few milliseconds, and
writes each change as "MONOTONIC_MS NAME VALUE" (the first sample of every line too) to
OUT, flushed at once so that what the host reads is never half a line.

  sample_lines.py OUT NAME=PATH [NAME=PATH ...]
Runs until killed. Only the standard library.
"""

import sys
import time


def main(argv):
    out = open(argv[0], "a", buffering=1)
    lines = [a.split("=", 1) for a in argv[1:]]
    last = {}
    while True:
        now = time.monotonic() * 1000
        for name, path in lines:
            with open(path) as f:
                value = f.read().strip()
            if last.get(name) != value:
                last[name] = value
                out.write(f"{now:.0f} {name} {value}\n")
        time.sleep(0.005)


if __name__ == "__main__":
    main(sys.argv[1:])
