"""The appliance harness's pytest wiring (docs/developer/appliance.md): one Machine for the
session (the guest and its plumbing, see harness/), each check a test with its own
artifact directory (artifacts/<check>/), and the run's summary table at the end.

  scripts/appliance-test [--arm64] [--keep]      builds the inputs, then runs every check
  scripts/appliance/check [CHECK ...]            one check (or more) alone, against the
                                                 guest a --keep run left running
"""

import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import display, gpio, inputs, lnvend, report, vm, wallet  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--keep", action="store_true", help="leave the guest running at the end")
    parser.addoption("--attach", metavar="RUN_DIR", default=None,
                     help="run against the guest a --keep run left in RUN_DIR (no boot)")


class Machine:
    """Everything a check needs: the guest and its plumbing, the run's state and report."""

    def __init__(self, ins, attached):
        self.inputs = ins
        self.attached = attached
        self.guest = vm.Guest(ins)
        self.state = inputs.State(ins.run)
        self.gpio = gpio.GpioSim(self.guest, self.state)
        self.wallet = wallet.Wallet(self.guest)
        self.lnvend = lnvend.Lnvend(self.guest, self.gpio, self.wallet)
        self.idle = display.HostIdle(ins.art)
        self.report = report.Report(ins.art, ins.arch)
        self.art = ins.art

    def figure(self, text):
        self.report.figure(text)

    def screendump(self, name):
        return self.guest.screendump(self.art / name)

    def assert_low(self, when):
        now = self.gpio.lines_now()
        assert now == gpio.LOW, f"the pump lines (ENA IN1 IN2) are {now} {when}"

    def not_idle(self, shot):
        """The idle comparison must tell another screen apart, or it proves nothing."""
        ncc = self.idle.ncc(shot)
        self.figure(f"{Path(shot).stem} vs the host-drawn idle screen (NCC): {ncc:.3f} (below {display.IDLE_NCC} wanted)")
        assert ncc < display.IDLE_NCC, f"{shot} looks like the idle screen to the comparison (NCC {ncc:.3f}): the measure is blind"


def pytest_configure(config):
    attach = config.getoption("--attach")
    ins = inputs.from_kept(attach) if attach else inputs.from_env()
    if not attach:
        if ins.art.exists():
            shutil.rmtree(ins.art)
    ins.art.mkdir(parents=True, exist_ok=True)
    config._appliance = Machine(ins, bool(attach))


@pytest.fixture(scope="session")
def m(request):
    return request.config._appliance


@pytest.fixture(autouse=True)
def _check(request, m):
    """Each check's own artifact directory and its line in the report."""
    m.art = m.report.begin(request.node.name)
    yield
    m.art = m.inputs.art


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    m = item.config._appliance
    if rep.when == "setup" and rep.skipped:
        m.report.not_run(item.name)  # skipped by a mark: its fixture never began it
    if rep.when == "call" or (rep.when == "setup" and rep.outcome != "passed"):
        if item.name in m.report.checks:
            m.report.end(item.name, rep.outcome, call.duration if rep.when == "call" else 0.0)
    if rep.when == "call" and rep.outcome == "passed":
        m.state.save()


def pytest_collection_modifyitems(session, config, items):
    config._appliance_items = [i.name for i in items]


def pytest_sessionfinish(session, exitstatus):
    m = session.config._appliance
    if not m.attached and not session.config.getoption("--keep"):
        m.guest.stop()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    m = config._appliance
    if config.option.collectonly:
        return
    for name in getattr(config, "_appliance_items", []):
        m.report.not_run(name)
    if m.inputs.t0:
        m.report.current = None
        m.figure(f"appliance-test total ({m.inputs.arch}): {time.time() - m.inputs.t0:.1f} s")
    table = m.report.table()
    # A check run alone against a kept guest keeps the full run's table.
    (m.inputs.art / ("summary-attached.txt" if m.attached else "summary.txt")).write_text(table + "\n")
    terminalreporter.write_sep("=", f"appliance checks ({m.inputs.arch}); artifacts in {m.inputs.art}")
    terminalreporter.write_line(table)
