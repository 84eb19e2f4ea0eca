"""The arm64 guest's short list (issue 13, "Also"), on qemu-system-aarch64 -M virt under
TCG with the arm64 .deb that ships to the Pi: it installs as on x86_64; its unit reaches
READY with the screen drawn; a tap makes a sale whose QR decodes to the wallet's BOLT11;
its payment pours once on gpio-sim. Hardening, PSS, the watchdog, power cuts, the clock and
the upgrade are the same unit and code as on x86_64 (test_amd64.py covers them); under
arm64 TCG each would cost minutes more."""

import time

from harness import display, gpio
from harness.inputs import HERE
from test_amd64 import install_checks


def test_boot(m):
    ins = m.inputs
    m.figure(f"{ins.arch}: build phases: {ins.build} (each near 0 s when cached)")
    m.guest.prepare([HERE / "config.toml", ins.gpio_sim_ko, HERE / "fake_lnbits.py",
                     HERE / "sample_lines.py"], {"new": [ins.deb]})
    ins.save()
    s = m.guest.boot()
    m.figure(f"{ins.arch}: qemu start -> guest agent answers: {s:.1f} s")


def test_install(m):
    t0 = time.monotonic()
    install_checks(m)
    m.figure(f"arm64: apt install of the .deb and the install checks: {time.monotonic() - t0:.1f} s")


def test_gpio_sim_chip(m):
    perm = m.gpio.make_chip()
    assert perm == "gpio 660", f"/dev/{m.state['chip']} is {perm}, want gpio 660"
    m.assert_low("before lnvend")


def test_check_config(m):
    t0 = time.monotonic()
    m.wallet.start()
    m.figure(f"arm64: the stand-in LNbits (python3) answers after {time.monotonic() - t0:.1f} s")
    code, out, err = m.guest.run_sh("install -m 0640 -o root -g lnvend /mnt/share/config.toml /etc/lnvend/config.toml"
                                    " && lnvend check-config --config /etc/lnvend/config.toml")
    (m.art / "check-config.log").write_text(out + err)
    assert code == 0, f"check-config refused the test config:\n{out}{err}"


def test_start_ready(m):
    t0 = time.monotonic()
    m.lnvend.start()
    m.figure(f"arm64: unit start -> READY (systemctl start returned): {time.monotonic() - t0:.1f} s")
    assert m.lnvend.is_active(), "lnvend is not active after start"
    shot = m.screendump("screen-ready.png")
    m.figure(f"arm64: unit start -> READY -> screendump taken: {time.monotonic() - t0:.1f} s")
    assert not display.flat(shot), "the screen at READY is one flat colour"
    m.assert_low("at idle")


def test_sale_qr(m):
    m.gpio.start_sampler()
    t0 = time.monotonic()
    h, bolt11 = m.lnvend.tap_and_wait_invoice()
    m.state.update(hash=h, bolt11=bolt11)
    m.figure(f"arm64: tap on the Cola tile -> invoice made: {time.monotonic() - t0:.1f} s")
    time.sleep(2)
    shot = m.screendump("screen-payment.png")
    qr = display.qr_text(shot)
    assert qr, f"no QR code found on the payment screen ({shot})"
    assert qr.lower() == bolt11.lower(), f"the QR says {qr[:40]}…, the wallet made {bolt11[:40]}…"
    m.assert_low("before the payment")


def test_paid_sale_pours_once(m):
    h = m.state["hash"]
    t0 = time.monotonic()
    m.wallet.pay(h)
    st = m.lnvend.wait_state(h, {"poured"}, 120, 0.5)
    assert st == "poured", f"the paid sale was not poured ({st}):\n{m.lnvend.sales()}"
    m.figure(f"arm64: paid -> poured in the ledger: {time.monotonic() - t0:.1f} s")
    time.sleep(1)
    log = m.gpio.stop_sampler(m.art / "lines-sale.log")
    ena = gpio.high_intervals(log, "ENA")
    assert len(ena) == 1 and ena[0][1] is not None, f"ENA was high {len(ena)} times for one paid sale"
    ms = ena[0][1] - ena[0][0]
    m.figure(f"arm64: ENA (gpio-sim line 18) high once for {ms:.0f} ms (pour_ms 4000, sampled every ~5 ms)")
    assert 3500 <= ms <= 4800, f"ENA high for {ms} ms, want about 4000"
    assert not gpio.high_intervals(log, "IN2"), "IN2 (reverse) went high during a pour"
    m.assert_low("after the pour")
    m.figure(f"arm64: guest {m.guest.out('systemctl is-system-running --wait >/dev/null; systemd-analyze time | head -1')}")
