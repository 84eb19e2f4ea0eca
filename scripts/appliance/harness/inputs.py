"""What scripts/appliance-test built or found before the checks run (the image, its kernel
and initrd, gpio-sim.ko, the .debs), handed over in LNVEND_APPLIANCE_* variables, and the
run's state that a later pytest run against a kept guest picks up again (run/state.json)."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # scripts/appliance
ROOT = HERE.parent.parent


@dataclass
class Inputs:
    arch: str
    run: Path
    image: Path
    kernel: Path
    initrd: Path
    gpio_sim_ko: Path
    deb: Path
    previous_deb: Path | None
    quick: bool
    build: str
    t0: float | None

    @property
    def out(self):
        return self.run.parent

    @property
    def art(self):
        return self.out / ("artifacts" if self.arch == "amd64" else f"artifacts-{self.arch}")

    def save(self):
        """Kept beside the guest, so that one check can run alone against it later."""
        self.run.mkdir(parents=True, exist_ok=True)
        d = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}
        (self.run / "inputs.json").write_text(json.dumps(d, indent=1))


def from_env():
    e = os.environ
    prev = e.get("LNVEND_APPLIANCE_PREVIOUS_DEB") or None
    t0 = e.get("LNVEND_APPLIANCE_T0")
    return Inputs(
        arch=e["LNVEND_APPLIANCE_ARCH"], run=Path(e["LNVEND_APPLIANCE_RUN"]),
        image=Path(e["LNVEND_APPLIANCE_IMAGE"]), kernel=Path(e["LNVEND_APPLIANCE_KERNEL"]),
        initrd=Path(e["LNVEND_APPLIANCE_INITRD"]),
        gpio_sim_ko=Path(e["LNVEND_APPLIANCE_GPIO_SIM"]), deb=Path(e["LNVEND_APPLIANCE_DEB"]),
        previous_deb=Path(prev) if prev else None,
        quick=e.get("LNVEND_APPLIANCE_QUICK") == "1", build=e.get("LNVEND_APPLIANCE_BUILD", ""),
        t0=float(t0) if t0 else None)


def from_kept(run):
    """The inputs of the run that left its guest in RUN (scripts/appliance-test --keep)."""
    d = json.loads((Path(run) / "inputs.json").read_text())
    paths = ("run", "image", "kernel", "initrd", "gpio_sim_ko", "deb", "previous_deb")
    for k in paths:
        if d.get(k):
            d[k] = Path(d[k])
    d["quick"] = False
    d["t0"] = None
    return Inputs(**d)


class State(dict):
    """What one check leaves for the next (the gpio-sim directory, the sale's invoice), in
    run/state.json, so a check run alone against a kept guest finds it."""

    def __init__(self, run):
        self.path = Path(run) / "state.json"
        super().__init__(json.loads(self.path.read_text()) if self.path.exists() else {})

    def save(self):
        self.path.write_text(json.dumps(self, indent=1))
