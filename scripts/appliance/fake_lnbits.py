#!/usr/bin/env python3
"""A stand-in LNbits wallet inside the appliance guest (scripts/appliance-test), which has no
network: the part of LNbits' REST API that lnvend's LNbits backend uses, over loopback.

  GET  /api/v1/wallet                 the key's wallet (lnvend's health check)
  POST /api/v1/payments               {"out": false, "amount": N, "unit": "sat", ...}
                                      a signed regtest BOLT11 for N sat
  GET  /api/v1/payments/{hash}        paid or not, with the owning wallet's "details"
  anything else (the /api/v1/ws websocket included) 404: lnvend then polls.

Its BOLT11s are real: signed with a throw-away secp256k1 key made at start, so lnvend's
decoder verifies them as it would LNbits'. A payment is the test saying so: a file
STATE/paid/HASH. Every invoice is kept as STATE/invoices/HASH.json (fsync'd), so the wallet
answers for its invoices after the guest loses power and boots again, as LNbits would.
The real LNbits is tested against lnvend on the host (tests/lnbits.rs); this one only stands
in for it where nothing can reach one.

  fake_lnbits.py --port 5999 --key INVOICE_KEY --state DIR
Only the standard library.
"""

import argparse
import hashlib
import json
import os
import secrets
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# secp256k1
P = 2**256 - 2**32 - 977
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
G = (0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
     0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8)


def point_add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0] and (a[1] + b[1]) % P == 0:
        return None
    if a == b:
        lam = 3 * a[0] * a[0] * pow(2 * a[1], -1, P) % P
    else:
        lam = (b[1] - a[1]) * pow(b[0] - a[0], -1, P) % P
    x = (lam * lam - a[0] - b[0]) % P
    return x, (lam * (a[0] - x) - a[1]) % P


def point_mul(k, pt=G):
    out = None
    while k:
        if k & 1:
            out = point_add(out, pt)
        pt = point_add(pt, pt)
        k >>= 1
    return out


def sign_recoverable(digest, key):
    """(r || s, recovery id) with a low s, as BOLT11 wants."""
    z = int.from_bytes(digest, "big")
    while True:
        k = secrets.randbelow(N - 1) + 1
        rx, ry = point_mul(k)
        r = rx % N
        if r == 0:
            continue
        s = pow(k, -1, N) * (z + r * key) % N
        if s == 0:
            continue
        recid = (ry & 1) | (2 if rx >= N else 0)
        if s > N // 2:
            s = N - s
            recid ^= 1
        return r.to_bytes(32, "big") + s.to_bytes(32, "big"), recid


CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def bech32_polymod(values):
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def bech32_encode(hrp, data):
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    polymod = bech32_polymod(expanded + data + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[d] for d in data + checksum)


def to5(data):
    """8-bit bytes as 5-bit groups, zero-padded at the end."""
    acc = bits = 0
    out = []
    for b in data:
        acc = (acc << 8) | b
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((acc >> bits) & 31)
    if bits:
        out.append((acc << (5 - bits)) & 31)
    return out


def to8(groups):
    acc = bits = 0
    out = bytearray()
    for g in groups:
        acc = (acc << 5) | g
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 255)
    if bits:
        out.append((acc << (8 - bits)) & 255)
    return bytes(out)


def int5(value, width=None):
    out = []
    while value:
        out.insert(0, value & 31)
        value >>= 5
    if width is not None:
        out = [0] * (width - len(out)) + out
    return out or [0]


def tagged(tag, groups):
    return [CHARSET.index(tag)] + int5(len(groups), 2) + groups


def bolt11(amount_msat, payment_hash, description, expiry_s, key):
    # 1 n(ano-BTC) is 100 msat; the callers only ask for whole sats.
    hrp = f"lnbcrt{amount_msat // 100}n"
    data = int5(int(time.time()), 7)
    data += tagged("p", to5(payment_hash))
    data += tagged("s", to5(secrets.token_bytes(32)))
    data += tagged("d", to5(description.encode()))
    data += tagged("x", int5(expiry_s))
    sig, recid = sign_recoverable(hashlib.sha256(hrp.encode() + to8(data)).digest(), key)
    return bech32_encode(hrp, data + to5(sig + bytes([recid])))


def write_synced(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Wallet(BaseHTTPRequestHandler):
    server_version = "fake-lnbits"

    def reply(self, status, body):
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def authorised(self):
        if self.headers.get("X-Api-Key") != self.server.key:
            self.reply(401, {"detail": "Invalid key"})
            return False
        return True

    def invoice_path(self, payment_hash):
        return os.path.join(self.server.state, "invoices", payment_hash + ".json")

    def do_GET(self):
        if self.path == "/api/v1/wallet":
            if self.authorised():
                self.reply(200, {"id": "vm-wallet", "name": "appliance", "balance": 0})
            return
        prefix = "/api/v1/payments/"
        h = self.path[len(prefix):] if self.path.startswith(prefix) else ""
        if len(h) == 64 and all(c in "0123456789abcdef" for c in h):
            try:
                inv = json.load(open(self.invoice_path(h)))
            except FileNotFoundError:
                self.reply(404, {"detail": "Payment does not exist."})
                return
            paid = os.path.exists(os.path.join(self.server.state, "paid", h))
            status = "success" if paid else "pending"
            body = {"paid": paid, "status": status}
            # LNbits shows the details only to the owning wallet's key.
            if self.headers.get("X-Api-Key") == self.server.key:
                body["details"] = {"payment_hash": h, "amount": inv["amount_msat"],
                                   "status": status, "bolt11": inv["bolt11"],
                                   "wallet_id": "vm-wallet"}
            self.reply(200, body)
            return
        self.reply(404, {"detail": "Not Found"})

    def do_POST(self):
        if self.path != "/api/v1/payments":
            self.reply(404, {"detail": "Not Found"})
            return
        if not self.authorised():
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            req = json.loads(self.rfile.read(min(length, 65536)))
            sat = int(req["amount"])
            if req.get("out") is not False or req.get("unit", "sat") != "sat" or sat <= 0:
                raise ValueError("only incoming invoices in sat")
        except (ValueError, KeyError, TypeError) as e:
            self.reply(400, {"detail": str(e)})
            return
        preimage = secrets.token_bytes(32)
        h = hashlib.sha256(preimage).digest()
        b11 = bolt11(sat * 1000, h, str(req.get("memo", ""))[:100],
                     int(req.get("expiry", 3600)), self.server.node_key)
        write_synced(self.invoice_path(h.hex()),
                     json.dumps({"bolt11": b11, "amount_msat": sat * 1000,
                                 "created": time.time()}))
        self.reply(201, {"payment_hash": h.hex(), "bolt11": b11, "payment_request": b11,
                         "amount": sat * 1000, "wallet_id": "vm-wallet",
                         "checking_id": h.hex()})

    def log_message(self, fmt, *args):
        print("fake-lnbits:", fmt % args, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=5999)
    ap.add_argument("--key", required=True)
    ap.add_argument("--state", required=True)
    a = ap.parse_args()
    for d in ("invoices", "paid"):
        os.makedirs(os.path.join(a.state, d), exist_ok=True)
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Wallet)
    srv.key, srv.state = a.key, a.state
    srv.node_key = secrets.randbelow(N - 1) + 1
    print(f"fake-lnbits: listening on 127.0.0.1:{a.port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
