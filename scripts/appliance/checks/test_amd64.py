"""The x86_64 appliance's checks, in the order they run in one guest (pytest runs a file's
tests in order; scripts/appliance-test stops at the first failure, since each check stands
on what the ones before it left). Each is one promise a user would notice; its figures are
in the run's summary table and artifacts/<check>/.

The guest boots four times: once fresh (the install, the sale, the menu, the watchdog),
then the same disk after each power cut, and once with its clock at 1970; the upgrade
check runs in the last boot, after purge, on a guest with no lnvend."""

import os
import re
import subprocess
import time

import pytest

from harness import display, gpio, lnvend
from harness.inputs import HERE

QUICK = os.environ.get("LNVEND_APPLIANCE_QUICK") == "1"
slow = pytest.mark.skipif(QUICK, reason="LNVEND_APPLIANCE_QUICK=1")
# The operator PIN of scripts/appliance/config.toml's operator_pin_hash (`lnvend hash-pin`),
# and one that is not it. Only a test guest's: its hash is in the repository.
OPERATOR_PIN, WRONG_PIN = "480317", "111111"
# The PIN pad's keys on the 800x480 screen (screen-pin.png; ui/screens/pin.slint: 120x64
# keys, 10 px apart, centred).
PIN_KEYS = {"1": (270, 136), "2": (400, 136), "3": (530, 136), "4": (270, 208), "5": (400, 208),
            "6": (530, 208), "7": (270, 280), "8": (400, 280), "9": (530, 280), "0": (400, 352),
            "OK": (530, 352)}
# The operator tabs' middles on the tab bar (x), in the order the check visits them.
TABS = [("pump", 176), ("stock", 288), ("sales", 400), ("credits", 512), ("status", 624), ("products", 64)]
PSS_GOAL_KB = 24 * 1024


def test_boot(m):
    """A fresh guest on a new overlay of the cached image; the guest agent answers."""
    ins = m.inputs
    m.figure(f"{ins.arch}: build phases: {ins.build} (each near 0 s when cached)")
    # Each .deb in a directory of its own (its file name may be anything).
    subdirs = {"new": [ins.deb], **({"previous": [ins.previous_deb]} if ins.previous_deb else {})}
    m.guest.prepare([HERE / "config.toml", ins.gpio_sim_ko, HERE / "fake_lnbits.py",
                     HERE / "sample_lines.py"], subdirs)
    ins.save()
    s = m.guest.boot()
    m.figure(f"{ins.arch}: qemu start -> guest agent answers: {s:.1f} s")


# The device groups each release's postinst puts lnvend in: dialout (an MDB HAT's serial line)
# came after the previous release the upgrade check installs first.
GROUPS = ("lnvend", "gpio", "video", "input", "render", "i2c", "spi", "dialout")
GROUPS_PREVIOUS = tuple(x for x in GROUPS if x != "dialout")


def install_checks(m, deb_glob="/mnt/share/new/*.deb", groups=GROUPS):
    """apt install of the .deb, and what the package promises of a fresh install."""
    g = m.guest
    g.sh("mountpoint -q /mnt/share || mount /mnt/share", what="mounting the 9p share")
    code, out, err = g.run_sh(f"cd /tmp && DEBIAN_FRONTEND=noninteractive apt-get install -y {deb_glob}")
    (m.art / "install.log").write_text(out + err)
    assert code == 0, f"apt install of the .deb failed (see {m.art}/install.log)"
    have = g.sh("id -nG lnvend", what="the user lnvend").split()
    for want in groups:
        assert want in have, f"lnvend is not in group {want} (has: {have})"
    perm = g.sh("stat -c '%a %U:%G' /etc/lnvend/config.toml")
    assert perm == "640 root:lnvend", f"/etc/lnvend/config.toml is {perm}, want 640 root:lnvend"
    assert g.out("systemctl is-enabled lnvend") == "enabled", "lnvend.service not enabled"
    assert not g.ok("lnvend check-config --config /etc/lnvend/config.toml"), \
        "the shipped config passes check-config (it names no payment backend)"
    assert g.out("systemctl is-active lnvend") != "active", "postinst started lnvend on the shipped config"


def test_install(m):
    """User lnvend in its groups, the config 0640 root:lnvend, the unit enabled, the shipped
    config refused by check-config and the service not started on it."""
    install_checks(m)


def test_gpio_sim_chip(m):
    """The gpio-sim chip lnvend-sim, its device root:gpio 0660 by the .deb's udev rule, its
    lines low before lnvend."""
    perm = m.gpio.make_chip()
    assert perm == "gpio 660", f"/dev/{m.state['chip']} is {perm}, want gpio 660"
    m.assert_low("before lnvend")


def use_test_config(m):
    m.wallet.start()
    m.guest.sh("install -m 0640 -o root -g lnvend /mnt/share/config.toml /etc/lnvend/config.toml")
    code, out, err = m.guest.run_sh("lnvend check-config --config /etc/lnvend/config.toml")
    (m.art / "check-config.log").write_text(out + err)
    assert code == 0, f"check-config refused the test config:\n{out}{err}"


def test_check_config(m):
    """check-config accepts the test config (gpiochip on lnvend-sim, LNbits on loopback)."""
    use_test_config(m)


def test_start_ready(m):
    """systemctl start returns at READY (Type=notify, from slint's event loop) and the
    screen at READY is drawn."""
    t0 = time.monotonic()
    m.lnvend.start()
    m.figure(f"unit start -> READY (systemctl start returned): {time.monotonic() - t0:.1f} s")
    assert m.lnvend.is_active(), "lnvend is not active after start"
    shot = m.screendump("screen-ready.png")
    m.figure(f"unit start -> READY -> screendump taken: {time.monotonic() - t0:.1f} s")
    assert not display.flat(shot), "the screen at READY is one flat colour"


def test_idle_screen(m):
    """The guest's idle screen has the structure of the host's drawing for its config."""
    time.sleep(3)
    shot = m.screendump("screen-idle.png")
    m.idle.side_by_side(shot, m.art / "idle-host-vs-guest.png")
    ncc = m.idle.ncc(shot)
    m.figure(f"idle screen, host-drawn vs guest screendump (grey 80x48 blocks, NCC): {ncc:.3f} (same screen from {display.IDLE_NCC})")
    assert ncc >= display.IDLE_NCC, f"the guest's idle screen is not the one the host draws (NCC {ncc:.3f})"


def test_pss_idle(m):
    """lnvend's PSS on the idle screen within the 24 MB goal."""
    pss = m.lnvend.pss_kb()
    m.figure(f"lnvend PSS on the idle screen: {pss} kB (kiosk build, profile vm)")
    assert pss <= PSS_GOAL_KB, f"PSS {pss} kB on the idle screen, goal <= 24 MB"


def test_security(m):
    """systemd-analyze security of the running unit <= 2.5; the pump lines low at idle."""
    table = m.guest.out("systemd-analyze security lnvend --no-pager")
    (m.art / "security.txt").write_text(table + "\n")
    last = table.splitlines()[-1] if table else ""
    found = re.findall(r"[0-9]+\.[0-9]+", last)
    exposure = float(found[0]) if found else None
    m.figure(f"systemd-analyze security lnvend (running): {exposure}")
    assert exposure is not None and exposure <= 2.5, f"exposure {exposure} > 2.5 ({last})"
    m.assert_low("at idle")


def test_sale_qr(m):
    """A multitouch tap on a tile makes the sale; the QR on screen decodes to the wallet's
    BOLT11; the payment screen is told apart from the idle one; no pump line moved."""
    m.gpio.start_sampler()
    h, bolt11 = m.lnvend.tap_and_wait_invoice()
    m.state.update(hash=h, bolt11=bolt11)
    m.state.save()
    time.sleep(2)
    shot = m.screendump("screen-payment.png")
    qr = display.qr_text(shot)
    assert qr, f"no QR code found on the payment screen ({shot})"
    assert qr.lower() == bolt11.lower(), f"the QR says {qr[:40]}…, the wallet made {bolt11[:40]}…"
    m.not_idle(shot)
    m.assert_low("before the payment")


def test_pss_payment(m):
    """lnvend's PSS on the payment screen (the QR up) within the 24 MB goal."""
    pss = m.lnvend.pss_kb()
    m.figure(f"lnvend PSS on the payment screen: {pss} kB (kiosk build, profile vm)")
    assert pss <= PSS_GOAL_KB, f"PSS {pss} kB on the payment screen, goal <= 24 MB"


def test_paid_sale_pours_once(m):
    """The payment pours once: ENA high once for the product's pour_ms, IN2 never; the
    sale's steps are found in journald by its id."""
    h = m.state["hash"]
    m.wallet.pay(h)
    st = m.lnvend.wait_state(h, {"poured"}, 60, 0.5)
    assert st == "poured", f"the paid sale was not poured ({st}):\n{m.lnvend.sales()}"
    time.sleep(1)
    log = m.gpio.stop_sampler(m.art / "lines-sale.log")
    ena = gpio.high_intervals(log, "ENA")
    assert len(ena) == 1 and ena[0][1] is not None, f"ENA was high {len(ena)} times for one paid sale"
    ms = ena[0][1] - ena[0][0]
    m.figure(f"ENA (gpio-sim line 18) high once for {ms:.0f} ms (pour_ms 4000, sampled every ~5 ms)")
    # The sampler is a Python loop under TCG beside a busy guest: a sample can come 150 ms
    # late (3864 ms was measured once), so the window is wide; once and low are exact.
    assert 3500 <= ms <= 4800, f"ENA high for {ms} ms, want about 4000"
    assert not gpio.high_intervals(log, "IN2"), "IN2 (reverse) went high during a pour"
    sale_id = m.lnvend.sale_id(h)
    assert sale_id, f"no sale id for invoice {h} in the ledger"
    steps = len(m.guest.out(f"journalctl -u lnvend --no-pager -o cat SALE_ID={sale_id}").splitlines())
    m.figure(f"journald: journalctl -u lnvend SALE_ID={sale_id} finds {steps} entries of the sale")
    assert steps >= 2, f"journalctl -u lnvend SALE_ID={sale_id} found {steps} entries, want every step"
    m.assert_low("after the pour")


def type_pin(m, pin):
    for d in list(pin) + ["OK"]:
        m.guest.tap(*PIN_KEYS[d])
        time.sleep(0.4)


def test_operator_menu(m):
    """The hidden corner held 3 s opens the PIN pad; a wrong PIN is refused on screen; the
    right one opens the menu; every tab opens; Exit leaves; the journal says so."""
    g = m.guest
    # The sale's thank-you screen first gives way to the idle screen.
    ncc = [0.0]

    def idle_again():
        ncc[0] = m.idle.ncc(g.screendump(m.art / "screen-now.png"))
        return ncc[0] >= display.IDLE_NCC
    assert g.wait_until(idle_again, 20), f"the idle screen did not come back after the sale (NCC {ncc[0]:.3f})"
    (m.art / "screen-now.png").unlink()
    g.hold(770, 30, 3600)
    time.sleep(1.5)
    pin = m.screendump("screen-pin.png")
    assert display.pixel_is(pin, 500, 340, "green"), "no PIN pad after holding the operator corner 3 s"
    m.not_idle(pin)
    type_pin(m, WRONG_PIN)
    time.sleep(3)
    wrong = m.screendump("screen-pin-wrong.png")
    assert display.pixel_is(wrong, 500, 340, "green"), "a wrong PIN left the PIN pad"
    diff = display.region_diff(pin, wrong, 0, 0, 800, 60)
    assert diff >= 1.0, f"a wrong PIN changed nothing in the pad's message line (grey diff {diff:.1f})"
    type_pin(m, OPERATOR_PIN)

    def opened():
        time.sleep(1)
        return display.pixel_is(m.screendump("screen-op-products.png"), 736, 20, "red")
    assert g.wait_until(opened, 20, 0), "the right PIN did not open the operator menu"
    assert display.pixel_is(m.art / "screen-op-products.png", 64, 20, "orange"), "the operator menu did not open on Products"
    for tab, x in TABS:
        g.tap(x, 42)
        time.sleep(2)
        shot = m.screendump(f"screen-op-{tab}.png")
        assert display.pixel_is(shot, x, 20, "orange"), f"the {tab} tab is not the current one after a tap"
    g.tap(736, 42)
    time.sleep(2)
    shot = m.screendump("screen-op-exit.png")
    assert not display.pixel_is(shot, 736, 20, "red"), "Exit did not leave the operator menu"
    j = m.lnvend.journal("-b -o cat")
    for line in ("wrong operator PIN", "operator menu opened", "operator menu closed"):
        assert line in j, f"no '{line}' in lnvend's journal"
    m.figure("operator menu: corner held 3 s -> PIN pad; a wrong PIN refused on screen; the right one opens it; 6 tabs and Exit")


DENIALS = ("seccomp", "operation not permitted", "permission denied", "eperm", "eacces")


def test_stop_and_journal(m):
    """systemctl stop leaves the lines low; the journal of the sale, the menu and the stop
    has no seccomp, namespace or device-policy denial (nor the kernel log)."""
    t0 = time.monotonic()
    m.guest.sh("systemctl stop lnvend", what="systemctl stop lnvend")
    m.figure(f"unit stop: {time.monotonic() - t0:.1f} s")
    m.assert_low("after stop")
    j = m.lnvend.journal("-b")
    (m.art / "journal.log").write_text(j + "\n")
    assert "Stopped lnvend" in j or "lnvend.service: Deactivated" in j, "the journal does not reach the shutdown"
    denials = [line for line in j.splitlines() if any(d in line.lower() for d in DENIALS)]
    assert not denials, "denials in the journal:\n" + "\n".join(denials)
    k = m.guest.out('journalctl -k --no-pager -b | grep -E "type=1326|apparmor=.DENIED" || true')
    assert not k, f"seccomp or other denials in the kernel log:\n{k}"


@slow
def test_watchdog(m):
    """SIGSTOP lnvend 1 s into a pour: systemd kills it within WatchdogSec + TimeoutAbortSec,
    pump-off drives the lines low, it restarts, and the interrupted sale is owed."""
    g, ln = m.guest, m.lnvend
    g.sh("systemctl start lnvend", what="systemctl start lnvend (again, after the stop)")
    restarts = ln.restarts()
    m.gpio.start_sampler()
    h, _ = ln.tap_and_wait_invoice()
    ln.pay_and_when_pouring(h, "sleep 1; kill -STOP $(systemctl show -p MainPID --value lnvend)")
    t0 = time.monotonic()
    assert g.wait_until(lambda: ln.restarts() > restarts, 60, 0.5), "systemd did not kill and restart a stopped lnvend"
    m.figure(f"watchdog: SIGSTOP mid-pour -> systemd restarted lnvend after {time.monotonic() - t0:.1f} s (WatchdogSec=10, TimeoutAbortSec=2)")
    m.assert_low("after the watchdog kill")
    assert ln.wait_active(60), "lnvend did not come back after the watchdog"
    time.sleep(2)
    log = m.gpio.stop_sampler(m.art / "lines-watchdog.log")
    ena = gpio.high_intervals(log, "ENA")
    assert len(ena) == 1 and ena[0][1] is not None, f"ENA high {len(ena)} times around the watchdog kill"
    ms = ena[0][1] - ena[0][0]
    # The hard stop is a thread of the stopped process: nothing in lnvend can stop the pump
    # while it is stopped; systemd's kill does (the kernel releases the lines, gpio-sim falls
    # back to its pull-down) and pump-off drives them low. systemd's SIGKILL comes at most
    # WatchdogSec + TimeoutAbortSec = 12 s after the last feed, which was no later than the
    # SIGSTOP, 1 s into the pour: ENA high at most 13 s, and 2 s more for the sampler's and
    # systemd's lateness under TCG (13.2 s was measured under a load of 17).
    m.figure(f"watchdog: ENA high for {ms:.0f} ms in all (1 s of pour, then lnvend stopped until the kill; bound 15 s)")
    assert ms <= 15000, f"the pump ran {ms} ms with lnvend stopped: beyond WatchdogSec + TimeoutAbortSec + 2 s"
    assert any("pump off: " in line and " low" in line for line in ln.journal("-n 300").splitlines()), \
        "no 'pump off: … low' from ExecStopPost in the journal after the watchdog kill"
    st = ln.sale_state(h)
    assert st == "owed", f"the sale interrupted by the watchdog is {st}, not owed:\n{ln.sales()}"


# Power cuts: kill qemu (SIGKILL, no shutdown) at a phase, boot the same disk again, and check
# the ledger: it opens, the sale is poured or owed or never paid, never poured twice. The disk
# is cache=writeback: the guest's fsync reaches the host's page cache (which outlives qemu);
# what the guest had not flushed is lost, as on an SD card that honours flushes.
AFTER_CUT = {"qr": {"created", "expired", "cancelled"}, "paid": {"poured", "owed"}, "pouring": {"owed"}}


def power_cut(m, phase):
    g, ln = m.guest, m.lnvend
    poured_before = ln.poured_count()
    # With the QR shown nothing paid can pour at boot: that boot starts as a Pi's does, the
    # chip and the wallet there before lnvend, for the boot -> sellable figure.
    if phase == "qr":
        ln.boot_units(g.share)
    m.gpio.start_sampler()
    h, _ = ln.tap_and_wait_invoice()
    if phase == "paid":
        m.wallet.pay(h, sync=True)
    elif phase == "pouring":
        ln.pay_and_when_pouring(h, "sleep 1")
    g.power_cut()
    g.boot()
    if phase == "qr":
        m.gpio.found_at_boot()
        kernel_s, own_s = ln.boot_to_sellable()
        m.figure(f"boot -> sellable: guest kernel start -> READY {kernel_s:.1f} s (lnvend started by systemd at boot; its own start -> READY {own_s:.1f} s)")
        m.gpio.start_sampler()
        # Once: the next boots are the test's again.
        g.sh("systemctl disable --quiet appliance-gpio-sim appliance-lnbits && sync")
    else:
        # The sampler from before lnvend can open the chip: it restarts every RestartSec
        # until gpio-sim is back, so every level after the boot is seen.
        m.gpio.make_chip()
        m.gpio.start_sampler()
        m.wallet.start()
    st = ln.wait_state(h, AFTER_CUT[phase], 120)
    assert st in AFTER_CUT[phase], f"after a power cut ({phase}) the sale is '{st}':\n{ln.sales()}"
    time.sleep(2)
    log = m.gpio.stop_sampler(m.art / f"lines-cut-{phase}.log")
    poured_after = ln.poured_count()
    m.assert_low(f"after the power cut ({phase})")
    pours = len(gpio.high_intervals(log, "ENA"))
    assert pours <= 1, f"ENA high {pours} times after the power cut ({phase})"
    assert not (phase == "pouring" and pours == 1), "the sale cut while pouring poured again after the boot"
    m.figure(f"power cut ({phase}): ledger opens, sale {st}, poured sales {poured_before} -> {poured_after}, {pours} pours after boot, lines low")


@slow
def test_power_cut_qr(m):
    """qemu killed with the QR shown; the next boot starts selling by itself (boot ->
    sellable figure); the sale was never paid: created, expired or cancelled."""
    power_cut(m, "qr")


@slow
def test_power_cut_paid(m):
    """qemu killed just after the payment: after the boot the sale pours once or is owed."""
    power_cut(m, "paid")


@slow
def test_power_cut_pouring(m):
    """qemu killed 1 s into the pour: after the boot the sale is owed, never poured again."""
    power_cut(m, "pouring")


@slow
def test_clock(m):
    """The same disk booted with its RTC at 1970 and no time sync (require_sync = true):
    the machine shows that it waits and sells nothing; once the time is set and timesyncd's
    flag file appears, a tap makes an invoice."""
    g, ln = m.guest, m.lnvend
    g.sh("sed -i 's/^require_sync = false/require_sync = true/' /etc/lnvend/config.toml && systemctl stop lnvend && sync")
    g.quit()
    g.boot(rtc="1970-01-01T00:00:00")
    m.figure(f"clock: guest booted at {g.out('date -u +%FT%TZ')} (RTC at 1970, no time sync)")
    m.gpio.make_chip()
    m.wallet.start()
    assert ln.wait_active(120), "lnvend not active on an unsynced clock"
    time.sleep(3)
    m.not_idle(m.screendump("screen-clock-wait.png"))
    before = m.wallet.invoice_count()
    g.tap(*display.TILE)
    time.sleep(5)
    assert m.wallet.invoice_count() == before, "the machine sold on an unsynced clock"
    m.assert_low("on an unsynced clock")
    g.sh(f"date -u -s @{int(time.time())} >/dev/null && mkdir -p /run/systemd/timesync && touch /run/systemd/timesync/synchronized")
    t0 = time.monotonic()

    def sells():
        g.tap(*display.TILE)
        time.sleep(2)
        return m.wallet.invoice_count() > before
    assert g.wait_until(sells, 120, 0), "the machine does not sell once the clock is synchronised"
    m.figure(f"clock: time sync signalled -> a tap makes an invoice within {time.monotonic() - t0:.1f} s")
    m.screendump("screen-clock-synced.png")
    g.sh("systemctl stop lnvend", what="systemctl stop lnvend")
    m.assert_low("after stop")


def test_purge(m):
    """apt purge removes the user lnvend and keeps the ledger."""
    g = m.guest
    assert g.ok(f"test -s {lnvend.LEDGER}"), f"no ledger at {lnvend.LEDGER} after a run"
    code, out, err = g.run_sh("DEBIAN_FRONTEND=noninteractive apt-get purge -y lnvend")
    (m.art / "purge.log").write_text(out + err)
    assert code == 0, f"apt purge lnvend failed:\n{out}{err}"
    assert g.ok(f"test -s {lnvend.LEDGER}"), f"purge removed the ledger {lnvend.LEDGER}"
    assert not g.ok("getent passwd lnvend"), "purge left the user lnvend"
    m.figure(f"guest {g.out('systemctl is-system-running --wait >/dev/null; systemd-analyze time | head -1')}")


def deb_version(deb):
    return subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True,
                          check=True).stdout.strip()


@slow
def test_upgrade_during_sale(m):
    """The upgrade a user meets: the previous release installed and configured as an
    operator would (with an edit of their own to the conffile), a sale's QR on the screen,
    then `apt install` of the new .deb. Its postinst restarts lnvend; the sale, paid after
    the upgrade, pours once or is owed, never lost; the ledger is at the schema version the
    new binary writes; the conffile is kept byte for byte. Runs after purge, on a machine
    with no lnvend, so the fresh-install checks above saw a fresh install."""
    ins, g, ln = m.inputs, m.guest, m.lnvend
    if not ins.previous_deb:
        pytest.skip("no previous release .deb (scripts/appliance/previous-release)")
    old, new = deb_version(ins.previous_deb), deb_version(ins.deb)
    # The purged machine's ledger is the new version's: the previous release starts afresh,
    # on a machine as it was before lnvend.
    # (A check run again on a kept guest first removes what its last run installed.)
    g.sh("if dpkg -s lnvend >/dev/null 2>&1; then DEBIAN_FRONTEND=noninteractive apt-get purge -y lnvend; fi"
         " && rm -rf /var/lib/lnvend /root/config.before")
    install_checks(m, "/mnt/share/previous/*.deb", groups=GROUPS_PREVIOUS)
    assert g.sh("dpkg-query -W -f '${Version}' lnvend") == old
    # The operator's config: the test config, and an edit of their own on this machine.
    g.sh("install -m 0640 -o root -g lnvend /mnt/share/config.toml /etc/lnvend/config.toml"
         " && sed -i 's/^credit_window_s = 600$/credit_window_s = 900/' /etc/lnvend/config.toml"
         " && echo '# edited on this machine, before the upgrade' >>/etc/lnvend/config.toml"
         " && cp -p /etc/lnvend/config.toml /root/config.before")
    assert g.ok("lnvend check-config --config /etc/lnvend/config.toml"), "check-config refused the edited config"
    ln.start()
    pid_before = ln.main_pid()
    version_before = ln.user_version()
    m.gpio.start_sampler()
    h, bolt11 = ln.tap_and_wait_invoice()
    time.sleep(2)
    shot = m.screendump("screen-qr-before-upgrade.png")
    qr = display.qr_text(shot)
    assert qr and qr.lower() == bolt11.lower(), f"no QR of the sale's invoice on the screen before the upgrade ({qr})"

    t0 = time.monotonic()
    # No one at the keyboard: dpkg's question about a conffile the operator edited and the
    # package changed too is answered as its default does (keep the operator's), the way an
    # unattended upgrade must ask for it (docs/operator/maintenance.md).
    code, out, err = g.run_sh(
        "cd /tmp && DEBIAN_FRONTEND=noninteractive apt-get install -y"
        " -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold /mnt/share/new/*.deb"
    )
    upgrade_s = time.monotonic() - t0
    (m.art / "upgrade.log").write_text(out + err)
    assert code == 0, f"apt install of the new .deb over the previous release failed (see {m.art}/upgrade.log)"
    assert g.sh("dpkg-query -W -f '${Version}' lnvend") == new
    assert ln.wait_active(120), "lnvend is not active after the upgrade"
    pid_after = ln.main_pid()
    assert pid_after != pid_before, "postinst did not restart lnvend: the old binary still runs"
    state_after = ln.sale_state(h)
    time.sleep(3)
    m.screendump("screen-after-upgrade.png")

    assert g.ok("cmp /root/config.before /etc/lnvend/config.toml"), \
        "the upgrade changed the operator's /etc/lnvend/config.toml:\n" + g.out("diff /root/config.before /etc/lnvend/config.toml")
    perm = g.sh("stat -c '%a %U:%G' /etc/lnvend/config.toml")
    assert perm == "640 root:lnvend", f"/etc/lnvend/config.toml is {perm} after the upgrade"
    have = g.sh("id -nG lnvend", what="the user lnvend").split()
    assert all(x in have for x in GROUPS), f"after the upgrade lnvend is in {have}, want all of {GROUPS}"
    version_after = ln.user_version()
    written = ln.fresh_ledger_version()
    assert version_after == written, f"the ledger is at schema {version_after} after the upgrade, the new binary writes {written}"

    m.wallet.pay(h)
    st = ln.wait_state(h, {"poured", "owed"}, 120)
    assert st in ("poured", "owed"), f"the sale paid after the upgrade is '{st}': lost\n{ln.sales()}"
    time.sleep(2)
    log = m.gpio.stop_sampler(m.art / "lines-upgrade.log")
    ena = gpio.high_intervals(log, "ENA")
    if st == "poured":
        assert len(ena) == 1 and ena[0][1] is not None, f"ENA high {len(ena)} times for the sale across the upgrade"
        ms = ena[0][1] - ena[0][0]
        assert 3500 <= ms <= 4800, f"ENA high for {ms} ms, want about 4000"
        pour = f"one pour of {ms:.0f} ms"
    else:
        assert not ena, f"the owed sale poured ({len(ena)} times)"
        pour = "no pour, owed"
    m.assert_low("after the upgrade's sale")
    m.figure(f"upgrade during a sale: {old} -> {new} with the QR up: apt install {upgrade_s:.1f} s, lnvend restarted by "
             f"postinst (pid {pid_before} -> {pid_after}), the sale '{state_after}' after the restart; paid -> {st}, {pour}; "
             f"ledger user_version {version_before} -> {version_after} (the new binary writes {written}); conffile kept byte for byte")
