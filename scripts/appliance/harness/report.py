"""A run's record: every figure (also in artifacts/figures.txt, with the accelerator), each
check's outcome, time and artifacts, and the summary table printed at the end of the run
(and kept in artifacts/summary.txt)."""

import time


class Report:
    def __init__(self, art, arch):
        self.art = art
        self.arch = arch
        self.checks = {}  # name -> {"outcome", "seconds", "figures", "artifacts"}
        self.order = []
        self.current = None
        self.totals = []  # figures of the whole run, not of one check

    def begin(self, name):
        self.current = name
        if name not in self.checks:
            self.order.append(name)
        self.checks[name] = {"outcome": "running", "seconds": 0.0, "figures": [], "artifacts": []}
        return self.check_dir(name)

    def check_dir(self, name):
        d = self.art / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def end(self, name, outcome, seconds):
        c = self.checks[name]
        c["outcome"], c["seconds"] = outcome, seconds
        d = self.art / name
        c["artifacts"] = sorted(p.name for p in d.iterdir()) if d.exists() else []
        if d.exists() and not c["artifacts"]:
            d.rmdir()

    def not_run(self, name):
        if name not in self.checks:
            self.order.append(name)
            self.checks[name] = {"outcome": "not run", "seconds": 0.0, "figures": [], "artifacts": []}

    def figure(self, text):
        line = f"{text} (TCG)"
        print(f"{time.strftime('%H:%M:%S', time.gmtime())} appliance: figure: {line}", flush=True)
        with open(self.art / "figures.txt", "a") as f:
            f.write(line + "\n")
        if self.current:
            self.checks[self.current]["figures"].append(text)
        else:
            self.totals.append(text)

    def table(self):
        rows = [("check", "result", "time", "artifacts")]
        for n in self.order:
            c = self.checks[n]
            arts = ", ".join(c["artifacts"])
            rows.append((n, c["outcome"], f"{c['seconds']:.1f} s" if c["outcome"] != "not run" else "-",
                         arts if len(arts) <= 60 else arts[:57] + "..."))
        w = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [" | ".join(r[i].ljust(w[i]) for i in range(4)).rstrip() for r in rows]
        lines.insert(1, "-+-".join("-" * x for x in w))
        lines.append("")
        lines.append(f"figures ({self.arch}, TCG):")
        for n in self.order:
            for f in self.checks[n]["figures"]:
                lines.append(f"  {n}: {f}")
        lines.extend(f"  {f}" for f in self.totals)
        return "\n".join(lines)
