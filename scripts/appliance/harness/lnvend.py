"""lnvend in the guest as an operator meets it: the service (systemd), the ledger through
`lnvend sales`, its memory; a sale's steps (a tap on the first tile, the invoice, the
payment, the pour); and the boot units that make the guest start selling by itself at
boot, as a Pi does once installed."""

from . import display, wallet

CONFIG = "/etc/lnvend/config.toml"
LEDGER = "/var/lib/lnvend/sales.db"
SALES = f"runuser -u lnvend -- lnvend sales --config {CONFIG}"


class Lnvend:
    def __init__(self, guest, gpio, wallet_):
        self.g = guest
        self.gpio = gpio
        self.wallet = wallet_

    def is_active(self):
        return self.g.out("systemctl is-active lnvend") == "active"

    def wait_active(self, seconds=120):
        return self.g.wait_until(self.is_active, seconds)

    def prop(self, name):
        return self.g.out(f"systemctl show -p {name} --value lnvend")

    def restarts(self):
        return int(self.prop("NRestarts") or 0)

    def main_pid(self):
        return self.prop("MainPID")

    def pss_kb(self):
        return int(self.g.sh(f"awk '/^Pss:/ {{ print $2 }}' /proc/{self.main_pid()}/smaps_rollup"))

    def start(self):
        code, out, err = self.g.run_sh("systemctl start lnvend")
        if code != 0:
            raise AssertionError("systemctl start lnvend failed:\n" + self.g.out("journalctl -u lnvend --no-pager -n 50"))

    def journal(self, args="-b"):
        return self.g.out(f"journalctl -u lnvend --no-pager {args}")

    # --- the ledger -------------------------------------------------------------------
    def sales(self):
        return self.g.out(SALES)

    def _csv_row(self, invoice_hash):
        for row in self.g.out(f"{SALES} --csv").splitlines():
            f = row.split(",")
            if len(f) > 6 and f[5] == invoice_hash:
                return f
        return None

    def sale_state(self, invoice_hash):
        """The ledger's state of the sale of INVOICE_HASH (the CSV has the invoice id)."""
        row = self._csv_row(invoice_hash)
        return row[6] if row else ""

    def sale_id(self, invoice_hash):
        row = self._csv_row(invoice_hash)
        return row[0] if row else ""

    def poured_count(self):
        for row in self.sales().splitlines():
            if row.startswith("poured:"):
                return row.split()[1]
        return "?"

    def wait_state(self, invoice_hash, states, seconds, step=1.0):
        """The sale's state once it is one of STATES (or the last one seen)."""
        last = [""]

        def reached():
            last[0] = self.sale_state(invoice_hash)
            return last[0] in states
        self.g.wait_until(reached, seconds, step)
        return last[0]

    def user_version(self, path=LEDGER):
        return int(self.g.sh(f"python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(\"PRAGMA user_version\").fetchone()[0])' {path}"))

    def fresh_ledger_version(self):
        """The schema version the installed binary writes: a ledger it makes afresh, by a
        simulator run (mock pump, simulated backend) with a data_dir of its own."""
        script = ('d=$(mktemp -d) && printf \'data_dir = "%s"\\n[[product]]\\nname = "Cola"\\nprice_sat = 2100\\npour_ms = 4000\\n\' "$d" >$d/config.toml'
                  ' && cd $d && echo quit | timeout 300 lnvend sim --headless --config $d/config.toml >/dev/null'
                  ' && python3 -c \'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA user_version").fetchone()[0])\' $d/sales.db'
                  ' && rm -rf $d')
        return int(self.g.sh(script, what="a fresh ledger made by the installed binary"))

    # --- a sale -----------------------------------------------------------------------
    def tap_and_wait_invoice(self):
        """A tap on the first product tile (Cola) and the payment screen with its invoice:
        (hash, bolt11)."""
        before = self.wallet.invoice_count()
        self.g.tap(*display.TILE)
        if not self.g.wait_until(lambda: self.wallet.invoice_count() > before, 30, 0.5):
            raise AssertionError("a tap on the tile made no invoice")
        return self.wallet.newest_invoice()

    def pay_and_when_pouring(self, invoice_hash, then):
        """Pays the invoice, waits in the guest until ENA is high (the pour runs), then runs
        THEN in the guest at once: the moment is taken inside the guest, not across the agent."""
        ena = self.gpio.value_path("ENA")
        self.g.sh(f"touch {wallet.STATE}/paid/{invoice_hash}\n"
                  f'for i in $(seq 600); do [ "$(cat {ena})" = 1 ] && break; sleep 0.02; done\n'
                  f'[ "$(cat {ena})" = 1 ] || exit 1\n{then}', what="the paid sale starting its pour")

    # --- boot units -------------------------------------------------------------------
    def boot_units(self, share):
        """The gpio-sim chip and the stand-in wallet as units before lnvend, enabled for one
        boot (see the power-cut check)."""
        (share / "appliance-gpio-sim.service").write_text(
            "[Unit]\nDescription=gpio-sim chip lnvend-sim (appliance test)\nRequiresMountsFor=/mnt/share\n"
            "Before=lnvend.service\n[Service]\nType=oneshot\nRemainAfterExit=yes\n"
            "ExecStart=/bin/sh -ec 'modprobe configfs; mountpoint -q /sys/kernel/config || mount -t configfs none"
            " /sys/kernel/config; insmod /mnt/share/gpio-sim.ko; c=/sys/kernel/config/gpio-sim/lnvend;"
            " mkdir -p $$c/bank0; echo 28 >$$c/bank0/num_lines; echo lnvend-sim >$$c/bank0/label;"
            " echo 1 >$$c/live; udevadm settle'\n[Install]\nWantedBy=multi-user.target\n")
        (share / "appliance-lnbits.service").write_text(
            "[Unit]\nDescription=stand-in LNbits (appliance test)\nRequiresMountsFor=/mnt/share\n"
            f"Before=lnvend.service\n[Service]\nExecStart={wallet.SERVE}\n"
            "ExecStartPost=/usr/bin/python3 -c 'import socket, time; [time.sleep(0.1) for _ in range(300)"
            " if socket.socket().connect_ex((\"127.0.0.1\", 5999))]'\n[Install]\nWantedBy=multi-user.target\n")
        self.g.sh("cp /mnt/share/appliance-gpio-sim.service /mnt/share/appliance-lnbits.service /etc/systemd/system/ &&"
                  " systemctl daemon-reload && systemctl enable --quiet appliance-gpio-sim appliance-lnbits && sync",
                  what="installing the boot units")

    def boot_to_sellable(self):
        """(kernel start -> READY, lnvend's own start -> READY) in seconds, on a boot where
        systemd started lnvend by itself: its ActiveEnterTimestampMonotonic is when READY
        came (Type=notify, sent from inside slint's event loop once the idle screen is up)
        on the clock that starts with the kernel."""
        if not self.wait_active(120):
            raise AssertionError("lnvend did not start by itself at boot")
        assert self.restarts() == 0, "lnvend needed restarts at boot: the figure would not be one start"
        ready = int(self.prop("ActiveEnterTimestampMonotonic"))
        start = int(self.prop("ExecMainStartTimestampMonotonic"))
        return ready / 1e6, (ready - start) / 1e6

