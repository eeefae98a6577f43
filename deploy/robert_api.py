"""An independent ROBERT client for the deployment scripts.

It speaks the public API (protocol.md §3, §6-§9; server-api.md §3) with its
own cryptography (the Python `cryptography` package), sharing no code with
the Rust workspace: P-256 key agreement at /register, K_A and K_A_Tuples by
HMAC-SHA256 ("mac", "tuples"), the AES-256-GCM tuple bundle, the /status
MAC (salt 0x02), HELLO MACs (salt 0x01) for /report contacts.

Used by failure_test.py and status_scale.py. Python 3.9+, stdlib plus
`cryptography`.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import random
import struct
import time
import urllib.parse

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NTP_UNIX_OFFSET = 2_208_988_800
EPOCH_SECS = 900


def b64(b):
    return base64.b64encode(b).decode()


def ntp_now():
    return int(time.time()) + NTP_UNIX_OFFSET


class Http:
    """One keep-alive HTTP/1.1 connection (one per worker thread)."""

    def __init__(self, base, timeout=10.0, forwarded_for=None):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port or 80
        self.timeout = timeout
        self.forwarded_for = forwarded_for
        self.conn = None
        self.last_headers = {}
        self.last_body = b""

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None):
        """Returns (status, body bytes, headers dict). A transport error is
        status 0 with the error text as body; the connection is reopened at
        the next call."""
        h = {"Accept": "application/json"}
        if body is not None:
            body = json.dumps(body, separators=(",", ":")).encode()
            h["Content-Type"] = "application/json"
        if self.forwarded_for:
            h["X-Forwarded-For"] = self.forwarded_for
        h.update(headers or {})
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
            data = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            if hdrs.get("connection", "").lower() == "close":
                self.close()
            self.last_headers, self.last_body = hdrs, data
            return r.status, data, hdrs
        except (OSError, http.client.HTTPException) as e:
            self.close()
            self.last_headers, self.last_body = {}, repr(e).encode()
            return 0, self.last_body, {}


class Registration:
    """One app's registration: its keys and its EBID tuples."""

    def __init__(self, server_public_key_b64):
        self.server_pub = serialization.load_der_public_key(base64.b64decode(server_public_key_b64))
        self.priv = ec.generate_private_key(ec.SECP256R1())
        self.k_a = None
        self.k_a_tuples = None
        self.tuples = {}  # epochId -> (ebid bytes, ecc bytes)
        self.time_start = None

    def public_key_b64(self):
        der = self.priv.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return b64(der)

    def derive(self):
        shared = self.priv.exchange(ec.ECDH(), self.server_pub)  # x coordinate, 32 bytes
        self.k_a = hmac.new(shared, b"mac", hashlib.sha256).digest()
        self.k_a_tuples = hmac.new(shared, b"tuples", hashlib.sha256).digest()

    def take_bundle(self, bundle_b64):
        raw = base64.b64decode(bundle_b64)
        plain = AESGCM(self.k_a_tuples).decrypt(raw[:12], raw[12:], None)
        for t in json.loads(plain):
            self.tuples[t["epochId"]] = (base64.b64decode(t["key"]["ebid"]), base64.b64decode(t["key"]["ecc"]))

    def current_epoch(self):
        return (ntp_now() - self.time_start) // EPOCH_SECS

    def tuple_now(self):
        e = self.current_epoch()
        if e in self.tuples:
            return e, self.tuples[e]
        # The latest epoch held, as an app whose bundle ran out would do.
        e = max(k for k in self.tuples if k <= e)
        return e, self.tuples[e]

    def auth_body(self, salt=0x02):
        epoch, (ebid, _) = self.tuple_now()
        t32 = struct.pack(">I", ntp_now() & 0xFFFFFFFF)
        mac = hmac.new(self.k_a, bytes([salt]) + ebid + struct.pack(">i", epoch) + t32, hashlib.sha256).digest()
        return {"ebid": b64(ebid), "epochId": epoch, "time": b64(t32), "mac": b64(mac)}

    def hello(self):
        """A HELLO this app would broadcast now, as a /report contact."""
        epoch, (ebid, ecc) = self.tuple_now()
        ntp = ntp_now()
        t16 = struct.pack(">H", ntp & 0xFFFF)
        mac = hmac.new(self.k_a, b"\x01" + ecc + ebid + t16, hashlib.sha256).digest()[:5]
        return {
            "ebid": b64(ebid),
            "ecc": b64(ecc),
            "ids": [
                {
                    "timeCollectedOnDevice": ntp,
                    "timeFromHelloMessage": ntp & 0xFFFF,
                    "mac": b64(mac),
                    "rssiCalibrated": -60,
                }
            ],
        }


def register(http_, server_public_key_b64, captcha_answer="any"):
    """Captcha then /register. Returns (status, Registration or None, detail)."""
    s, body, _ = http_.request("POST", "/api/v6/captcha", {"type": "IMAGE", "locale": "fr"})
    if s != 201 and s != 200:
        return s, None, body[:200]
    cid = json.loads(body).get("captchaId") or json.loads(body).get("id")
    reg = Registration(server_public_key_b64)
    s, body, _ = http_.request(
        "POST",
        "/api/v6/register",
        {"captcha": captcha_answer, "captchaId": cid, "clientPublicECDHKey": reg.public_key_b64()},
    )
    if s != 201:
        return s, None, body[:200]
    r = json.loads(body)
    reg.time_start = r["timeStart"]
    reg.derive()
    reg.take_bundle(r["tuples"])
    return s, reg, b""


def status(http_, reg):
    """/status. Returns (status code, response headers)."""
    s, body, h = http_.request("POST", "/api/v6/status", reg.auth_body(0x02))
    if s == 200:
        reg.take_bundle(json.loads(body)["tuples"])
    return s, h


def report(http_, token, contacts):
    s, body, h = http_.request("POST", "/api/v6/report", {"token": token, "contacts": contacts})
    return s, h


def random_contact():
    """A contact with a random EBID: stored by /report, dropped by the batch;
    its EBID identifies the report in the database afterwards."""
    ebid = os.urandom(8)
    ntp = ntp_now()
    return ebid, {
        "ebid": b64(ebid),
        "ecc": b64(os.urandom(1)),
        "ids": [
            {
                "timeCollectedOnDevice": ntp,
                "timeFromHelloMessage": ntp & 0xFFFF,
                "mac": b64(os.urandom(5)),
                "rssiCalibrated": -random.randint(40, 90),
            }
        ],
    }


def generate_code(http_, api_key, kind="short"):
    s, body, _ = http_.request("GET", f"/api/v1/generate/{kind}", headers={"x-api-key": api_key})
    if s != 200:
        raise RuntimeError(f"code service generate: {s} {body[:200]!r}")
    j = json.loads(body)
    return j.get("code") or j["codes"][0]
