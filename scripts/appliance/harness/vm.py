"""The guest: a Debian 12 qemu machine under TCG (no KVM on the build machine, always
-nic none) on a throw-away qcow2 overlay of the cached image, with the 800x480 virtio
display, a virtio multitouch device, a read-only 9p share of run/share, its QMP socket
and the qemu guest agent. Commands reach the guest only through the agent."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import qmp as qmplib

MACHINES = {
    # q35 with the PC's serial console.
    "amd64": {"system": "qemu-system-x86_64", "console": "ttyS0", "agent_s": 300,
              "machine": ["-machine", "q35,accel=tcg", "-cpu", "max", "-vga", "none"]},
    # virt has a PL011 UART (ttyAMA0), a PL031 RTC and a PL061 GPIO chip (gpiochip0: the
    # gpio-sim chip is found by its label, never by number). An arm64 guest under TCG boots
    # in ~47 s on an idle host, but several minutes on a contended one.
    "arm64": {"system": "qemu-system-aarch64", "console": "ttyAMA0", "agent_s": 900,
              "machine": ["-machine", "virt,accel=tcg", "-cpu", "cortex-a72"]},
}


class GuestCommandFailed(AssertionError):
    pass


class Guest:
    def __init__(self, inputs):
        self.inputs = inputs
        self.run = inputs.run
        self.share = self.run / "share"
        self.qmp_sock = self.run / "qmp.sock"
        self.qga_sock = self.run / "qga.sock"
        self.m = MACHINES[inputs.arch]

    # --- the disk and the share -------------------------------------------------------
    def prepare(self, files, subdirs=None):
        """A new run directory: the share holds FILES (and SUBDIRS: name -> files), and a
        fresh overlay of the image."""
        if self.run.exists():
            shutil.rmtree(self.run)
        self.share.mkdir(parents=True)
        for f in files:
            shutil.copy(f, self.share)
        for name, fs in (subdirs or {}).items():
            (self.share / name).mkdir()
            for f in fs:
                shutil.copy(f, self.share / name)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                        str(self.inputs.image), str(self.run / "overlay.qcow2")], check=True)

    # --- qemu -------------------------------------------------------------------------
    def boot(self, rtc=None):
        """qemu on the run's disk (a fresh overlay after prepare, the same disk after a power
        cut); returns the seconds until the guest agent answers."""
        for s in (self.qga_sock, self.qmp_sock, self.run / "qemu.pid"):
            s.unlink(missing_ok=True)
        t0 = time.monotonic()
        # The display at 800x480, the Pi's official 7" panel (qemu's default is 1280x800).
        # cache=writeback: what the guest has not flushed is lost when qemu dies, like an SD
        # card's own cache (the power-cut checks).
        cmd = [self.m["system"], *self.m["machine"], "-smp", "2", "-m", "1024", "-nic", "none",
               *(["-rtc", f"base={rtc}"] if rtc else []),
               "-kernel", str(self.inputs.kernel), "-initrd", str(self.inputs.initrd),
               "-append", f"root=/dev/vda rw console={self.m['console']} quiet systemd.show_status=0",
               "-drive", f"file={self.run}/overlay.qcow2,if=virtio,format=qcow2,cache=writeback",
               "-device", "virtio-gpu-pci,xres=800,yres=480", "-device", "virtio-multitouch-pci",
               "-display", "none",
               "-virtfs", f"local,path={self.share},mount_tag=share,security_model=none,readonly=on",
               "-device", "virtio-serial-pci",
               "-chardev", f"socket,path={self.qga_sock},server=on,wait=off,id=qga0",
               "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
               "-qmp", f"unix:{self.qmp_sock},server=on,wait=off",
               "-serial", f"file:{self.run}/console.log", "-daemonize",
               "-pidfile", f"{self.run}/qemu.pid"]
        subprocess.run(cmd, check=True)
        if qmplib.agent_wait(str(self.qga_sock), self.m["agent_s"]) != 0:
            raise AssertionError(f"guest agent never answered (see {self.run}/console.log)")
        return time.monotonic() - t0

    def pid(self):
        return int((self.run / "qemu.pid").read_text())

    def running(self):
        try:
            os.kill(self.pid(), 0)
            return True
        except (OSError, ValueError):
            return False

    def _wait_gone(self, pid):
        while True:
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.1)

    def power_cut(self):
        """SIGKILL to qemu: no shutdown, what the guest had not flushed is lost."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        self._wait_gone(pid)

    def quit(self):
        """QMP quit (the pid is read first: qemu removes its pid file as it exits)."""
        pid = self.pid()
        try:
            self.qmp("quit")
        except (OSError, ConnectionError, RuntimeError):
            pass
        self._wait_gone(pid)

    def stop(self):
        if not self.running():
            return
        pid = self.pid()
        try:
            self.qmp("quit")
        except (OSError, ConnectionError, RuntimeError):
            pass
        time.sleep(1)
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass

    # --- QMP --------------------------------------------------------------------------
    def qmp(self, *args):
        qmplib.qmp(str(self.qmp_sock), [str(a) for a in args])

    def screendump(self, path):
        self.qmp("screendump", path)
        return Path(path)

    def tap(self, x, y):
        self.qmp("tap", x, y, 800, 480)

    def hold(self, x, y, ms):
        self.qmp("hold", x, y, 800, 480, ms)

    # --- the guest agent --------------------------------------------------------------
    def run_sh(self, command, timeout=600):
        """(status, stdout, stderr) of /bin/sh -c COMMAND in the guest."""
        code, out, err = qmplib.agent_run(str(self.qga_sock), command, timeout)
        return code, out.decode(errors="replace"), err.decode(errors="replace")

    def sh(self, command, timeout=600, what=None):
        """COMMAND's stdout, stripped; a failed command fails the check."""
        code, out, err = self.run_sh(command, timeout)
        if code != 0:
            raise GuestCommandFailed(f"{what or 'guest command'} failed ({code}): {command}\n"
                                     f"{out[-2000:]}{err[-2000:]}")
        return out.strip()

    def ok(self, command):
        return self.run_sh(command)[0] == 0

    def out(self, command):
        """COMMAND's stdout, stripped, whatever its status."""
        return self.run_sh(command)[1].strip()

    def wait_until(self, predicate, seconds, step=1.0):
        deadline = time.monotonic() + seconds
        while True:
            v = predicate()
            if v or time.monotonic() > deadline:
                return v
            time.sleep(step)
