"""TLS key schedule for passive decryption: cipher suites, the TLS 1.2 PRF key block (RFC 5246 5,
6.3), TLS 1.3 HKDF-Expand-Label traffic keys (RFC 8446 7.1-7.3), and per-record AEAD decryption
with sequence-number nonces (RFC 5288 3 for TLS 1.2 GCM, RFC 7905 2 for ChaCha20, RFC 8446 5.3).

Only the schedule is written here; every primitive (HMAC, HKDF-Expand, AES-GCM/CCM,
ChaCha20-Poly1305) is the `cryptography` package's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

TAG = 16  # every supported AEAD has a 16-byte tag


@dataclass(frozen=True)
class Suite:
    name: str
    aead: str  # "gcm", "chacha", "ccm"
    key_len: int
    hash: str  # "sha256" / "sha384": the PRF's (1.2) or HKDF's (1.3) hash

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return hashes.SHA384() if self.hash == "sha384" else hashes.SHA256()

    @property
    def hash_len(self) -> int:
        return 48 if self.hash == "sha384" else 32


def _s(name: str, aead: str, key_len: int, hash_: str) -> Suite:
    return Suite(name, aead, key_len, hash_)


# the AEAD suites (IANA TLS Cipher Suites registry); CBC and stream suites are not supported
SUITES: dict[int, Suite] = {
    0x1301: _s("TLS_AES_128_GCM_SHA256", "gcm", 16, "sha256"),
    0x1302: _s("TLS_AES_256_GCM_SHA384", "gcm", 32, "sha384"),
    0x1303: _s("TLS_CHACHA20_POLY1305_SHA256", "chacha", 32, "sha256"),
    0x1304: _s("TLS_AES_128_CCM_SHA256", "ccm", 16, "sha256"),
    0x009C: _s("TLS_RSA_WITH_AES_128_GCM_SHA256", "gcm", 16, "sha256"),
    0x009D: _s("TLS_RSA_WITH_AES_256_GCM_SHA384", "gcm", 32, "sha384"),
    0x009E: _s("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "gcm", 16, "sha256"),
    0x009F: _s("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "gcm", 32, "sha384"),
    0xC02B: _s("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "gcm", 16, "sha256"),
    0xC02C: _s("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "gcm", 32, "sha384"),
    0xC02F: _s("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "gcm", 16, "sha256"),
    0xC030: _s("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "gcm", 32, "sha384"),
    0xCCA8: _s("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "chacha", 32, "sha256"),
    0xCCA9: _s("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "chacha", 32, "sha256"),
    0xCCAA: _s("TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "chacha", 32, "sha256"),
}


def suite_name(code: int) -> str:
    suite = SUITES.get(code)
    return suite.name if suite else f"cipher suite 0x{code:04X}"


# -- TLS 1.2 ---------------------------------------------------------------------------------

def prf12(secret: bytes, label: bytes, seed: bytes, length: int, hash_name: str) -> bytes:
    """RFC 5246 5: P_hash(secret, label + seed), the PRF of every TLS 1.2 suite."""
    algorithm = hashes.SHA384() if hash_name == "sha384" else hashes.SHA256()

    def mac(data: bytes) -> bytes:
        h = HMAC(secret, algorithm)
        h.update(data)
        return h.finalize()

    seed = label + seed
    out, a = b"", seed
    while len(out) < length:
        a = mac(a)  # A(i) = HMAC(secret, A(i-1))
        out += mac(a + seed)
    return out[:length]


def keys12(suite: Suite, master: bytes, client_random: bytes, server_random: bytes) -> tuple[
        tuple[bytes, bytes], tuple[bytes, bytes]]:
    """((client key, client iv), (server key, server iv)) from the key block (RFC 5246 6.3);
    AEAD suites have no MAC keys, GCM a 4-byte implicit salt, ChaCha20 a 12-byte IV."""
    iv_len = 12 if suite.aead == "chacha" else 4
    block = prf12(master, b"key expansion", server_random + client_random, 2 * (suite.key_len + iv_len), suite.hash)
    k = suite.key_len
    ck, sk = block[:k], block[k:2 * k]
    civ, siv = block[2 * k:2 * k + iv_len], block[2 * k + iv_len:]
    return (ck, civ), (sk, siv)


# -- TLS 1.3 ---------------------------------------------------------------------------------

def hkdf_expand_label(suite: Suite, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """RFC 8446 7.1: HKDF-Expand with the HkdfLabel structure ("tls13 " + label)."""
    full = b"tls13 " + label
    info = struct.pack("!HB", length, len(full)) + full + bytes([len(context)]) + context
    return HKDFExpand(suite.hash_algorithm(), length, info).derive(secret)


def keys13(suite: Suite, secret: bytes) -> tuple[bytes, bytes]:
    """(key, iv) of a traffic secret (RFC 8446 7.3)."""
    key = hkdf_expand_label(suite, secret, b"key", b"", suite.key_len)
    return key, hkdf_expand_label(suite, secret, b"iv", b"", 12)


def next_secret13(suite: Suite, secret: bytes) -> bytes:
    """The traffic secret after a KeyUpdate (RFC 8446 7.2)."""
    return hkdf_expand_label(suite, secret, b"traffic upd", b"", suite.hash_len)


# -- records -----------------------------------------------------------------------------------

class BadRecord(Exception):
    """A record does not authenticate: corrupt in the capture, or the wrong keys."""


class RecordCipher:
    """One direction's read state: key, IV and the sequence number of the next record."""

    def __init__(self, suite: Suite, key: bytes, iv: bytes, tls13: bool) -> None:
        self.suite, self.iv, self.tls13 = suite, iv, tls13
        self.seq = 0
        self.aead = (ChaCha20Poly1305(key) if suite.aead == "chacha" else
                     AESCCM(key, TAG) if suite.aead == "ccm" else AESGCM(key))

    def _xor_nonce(self, seq: int) -> bytes:
        padded = seq.to_bytes(len(self.iv), "big")
        return bytes(a ^ b for a, b in zip(self.iv, padded))

    def decrypt(self, rtype: int, version: bytes, fragment: bytes, seq: int | None = None) -> bytes:
        """Plaintext of one record's fragment (TLS 1.3: still with its inner type and padding).
        Advances the sequence number only on success; `seq` tries another number (resync)."""
        n = self.seq if seq is None else seq
        try:
            if self.tls13:  # RFC 8446 5.2: AAD is the record header itself
                if len(fragment) < TAG + 1:
                    raise BadRecord("record shorter than its tag")
                aad = bytes([rtype]) + version + len(fragment).to_bytes(2, "big")
                out = self.aead.decrypt(self._xor_nonce(n), fragment, aad)
            elif self.suite.aead == "chacha":  # RFC 7905: 12-byte IV xor the sequence number
                if len(fragment) < TAG:
                    raise BadRecord("record shorter than its tag")
                aad = struct.pack("!QB", n, rtype) + version + (len(fragment) - TAG).to_bytes(2, "big")
                out = self.aead.decrypt(self._xor_nonce(n), fragment, aad)
            else:  # RFC 5288: 4-byte salt + the 8-byte explicit nonce sent with the record
                if len(fragment) < 8 + TAG:
                    raise BadRecord("record shorter than its nonce and tag")
                aad = struct.pack("!QB", n, rtype) + version + (len(fragment) - 8 - TAG).to_bytes(2, "big")
                out = self.aead.decrypt(self.iv + fragment[:8], fragment[8:], aad)
        except InvalidTag:
            raise BadRecord("record does not authenticate") from None
        self.seq = n + 1
        return out
