"""The stand-in LNbits in the guest (../fake_lnbits.py on loopback port 5999): the guest has
no network, so the payment backend is LNbits' API served there, with regtest BOLT11s. An
invoice is paid when the harness touches paid/HASH in its state directory."""

KEY = "0123456789abcdef0123456789abcdef"
STATE = "/var/lib/fake-lnbits"
SERVE = (f"/usr/bin/python3 /mnt/share/fake_lnbits.py --port 5999 --key {KEY} --state {STATE}")


class Wallet:
    def __init__(self, guest):
        self.g = guest

    def start(self):
        self.g.sh(f"systemd-run --quiet --unit=fake-lnbits {SERVE}", what="starting the stand-in LNbits")
        probe = ("python3 -c 'import urllib.request as u; u.urlopen(u.Request("
                 f"\"http://127.0.0.1:5999/api/v1/wallet\", headers={{\"X-Api-Key\": \"{KEY}\"}}))'")
        if not self.g.wait_until(lambda: self.g.ok(probe), 60):
            raise AssertionError("the stand-in LNbits never answered")

    def invoice_count(self):
        out = self.g.out(f"ls {STATE}/invoices/ 2>/dev/null | grep -c json")
        return int(out) if out.isdigit() else 0

    def newest_invoice(self):
        """(hash, bolt11) of the newest invoice the wallet made."""
        out = self.g.sh(f'f=$(ls -t {STATE}/invoices/*.json | head -1); echo "$(basename "$f" .json) '
                        '$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\\"bolt11\\"])" "$f")"')
        h, bolt11 = out.split()
        return h, bolt11

    def pay(self, invoice_hash, sync=False):
        self.g.sh(f"touch {STATE}/paid/{invoice_hash}" + (f"; sync -f {STATE}/paid" if sync else ""))
