"""gpio-sim in the guest: the chip labelled lnvend-sim (28 lines: the header's BCM 0..27)
that lnvend drives as it drives the Pi's, the bridge lines' levels, and the line sampler
(../sample_lines.py, run in the guest) whose log shows every change of ENA, IN1 and IN2."""

import time

# The L298N's lines: ENA (BCM 18), IN1 (23), IN2 (24).
LINES = {"ENA": 18, "IN1": 23, "IN2": 24}
LOW = "0 0 0"


class GpioSim:
    def __init__(self, guest, state):
        self.g = guest
        self.state = state

    @property
    def sim_dir(self):
        return self.state["sim_dir"]

    def _set_dir(self, names):
        dev, chip = names.split()
        self.state["sim_dir"] = f"/sys/devices/platform/{dev}/{chip}"
        self.state["chip"] = chip
        self.state.save()

    def make_chip(self):
        """The chip through configfs, after the .deb's udev rule is in place (so
        /dev/gpiochipN is root:gpio 0660); returns that device's "group mode"."""
        self.g.sh("modprobe configfs && { mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config; }"
                  " && insmod /mnt/share/gpio-sim.ko", what="loading gpio-sim.ko")
        names = self.g.sh("set -e; c=/sys/kernel/config/gpio-sim/lnvend; mkdir -p $c/bank0\n"
                          "echo 28 >$c/bank0/num_lines; echo lnvend-sim >$c/bank0/label; echo 1 >$c/live\n"
                          'echo "$(cat $c/dev_name) $(cat $c/bank0/chip_name)"', what="making the gpio-sim chip")
        self._set_dir(names)
        return self.g.sh(f"udevadm settle; stat -c '%G %a' /dev/{self.state['chip']}")

    def found_at_boot(self):
        """The chip that appliance-gpio-sim.service (lnvend.boot_units) made at boot."""
        # The guest agent answers before the boot has reached multi-user.target.
        self.g.wait_until(lambda: self.g.out("systemctl is-active appliance-gpio-sim") == "active", 120)
        code, names, _ = self.g.run_sh("systemctl is-active --quiet appliance-gpio-sim && c=/sys/kernel/config/gpio-sim/lnvend"
                                       ' && echo "$(cat $c/dev_name) $(cat $c/bank0/chip_name)"')
        if code != 0:
            raise AssertionError("no gpio-sim chip from appliance-gpio-sim.service:\n" + self.g.out(
                "systemctl status --no-pager appliance-gpio-sim; journalctl -b --no-pager -u appliance-gpio-sim"))
        self._set_dir(names.strip())

    def value_path(self, name):
        return f"{self.sim_dir}/sim_gpio{LINES[name]}/value"

    def lines_now(self):
        """"ENA IN1 IN2" as gpio-sim shows them now."""
        return self.g.sh("cat " + " ".join(self.value_path(n) for n in LINES) + " | paste -sd' '")

    def start_sampler(self):
        args = " ".join(f"{n}={self.value_path(n)}" for n in LINES)
        self.g.sh("systemctl stop line-sampler 2>/dev/null; rm -f /run/lines.log; systemd-run --quiet --unit=line-sampler python3 "
                  f"/mnt/share/sample_lines.py /run/lines.log {args}", what="starting the sampler")

        def started():
            out = self.g.out("grep -c . /run/lines.log 2>/dev/null")
            return out.isdigit() and int(out) >= 3
        if not self.g.wait_until(started, 60):
            raise AssertionError("the line sampler wrote nothing")

    def stop_sampler(self, path):
        """Stops the sampler and keeps its log at PATH (an artifact); returns the log."""
        self.g.run_sh("systemctl stop line-sampler")
        text = self.g.sh("cat /run/lines.log")
        path.write_text(text + "\n")
        return text


def high_intervals(log, name):
    """The high intervals of one line in a sampler log: [(start_ms, end_ms or None)]."""
    out, start = [], None
    for row in log.splitlines():
        parts = row.split()
        if len(parts) != 3 or parts[1] != name:
            continue
        t, v = float(parts[0]), parts[2]
        if v == "1" and start is None:
            start = t
        elif v == "0" and start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, None))
    return out


def wait_low(gpio, seconds=0):
    deadline = time.monotonic() + seconds
    while True:
        now = gpio.lines_now()
        if now == LOW or time.monotonic() > deadline:
            return now
        time.sleep(0.5)
