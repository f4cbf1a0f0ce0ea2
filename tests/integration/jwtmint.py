"""Mint JSON Web Tokens for tests: HS256 with hmac, RS256 and ES256 with the openssl CLI.

Test keys are made fresh in a temporary folder (Keys); nothing is checked in.
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
import time


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _der_to_raw(der, size=32):
    """ECDSA signature: DER SEQUENCE {r, s} -> r || s, as JWS ES256 wants (RFC 7518 3.4)."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\0")
        out += v.rjust(size, b"\0")
        i += 2 + n
    return out


class Keys:
    """An HS256 secret, an RSA-2048 and an EC P-256 key pair, in files."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="rv-keys-")
        d = self.dir.name
        self.secret = os.urandom(32).hex().encode()  # 64 bytes of text
        self.secret_file = os.path.join(d, "hs256.secret")
        with open(self.secret_file, "wb") as f:
            f.write(self.secret + b"\n")  # the trailing newline is not part of it
        self.rsa_key, self.rsa_pub = os.path.join(d, "rsa.pem"), os.path.join(d, "rsa.pub")
        self.ec_key, self.ec_pub = os.path.join(d, "ec.pem"), os.path.join(d, "ec.pub")
        self.rsa2_key, self.rsa2_pub = os.path.join(d, "rsa2.pem"), os.path.join(d, "rsa2.pub")
        for key, pub, args in ((self.rsa_key, self.rsa_pub, ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                               (self.rsa2_key, self.rsa2_pub, ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                               (self.ec_key, self.ec_pub, ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])):
            subprocess.run(["openssl", "genpkey", *args, "-out", key], check=True, capture_output=True)
            subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], check=True, capture_output=True)

    def close(self):
        self.dir.cleanup()

    def sign(self, alg, signing_input, key=None):
        if alg == "HS256":
            return hmac.new(key if key is not None else self.secret, signing_input, hashlib.sha256).digest()
        if alg == "none":
            return b""
        pem = key or (self.rsa_key if alg == "RS256" else self.ec_key)
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", pem], input=signing_input,
                             check=True, capture_output=True).stdout
        return _der_to_raw(sig) if alg == "ES256" else sig

    def token(self, sub="alice", alg="HS256", kid=None, ttl=300, key=None, header=None, **claims):
        """A signed token; claims override the defaults (None removes one)."""
        now = int(time.time())
        h = {"alg": alg, "typ": "JWT"}
        if kid is not None:
            h["kid"] = kid
        h.update(header or {})
        body = {"sub": sub, "exp": now + ttl, "iat": now}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        signing_input = (b64url(json.dumps(h).encode()) + "." + b64url(json.dumps(body).encode())).encode()
        return signing_input.decode() + "." + b64url(self.sign(alg, signing_input, key))
