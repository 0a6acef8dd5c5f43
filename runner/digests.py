"""Short content digests and the canonical text they are taken over.

A leaf: the hash cache (``manifests/hashing``), fingerprints (``manifests/fingerprint``)
and step records (``store/state``) all digest with these, and none of them may import
another just for a hash function.

Digests are BLAKE2b, 16 bytes, hex (32 characters): collision-safe for content addressing
at this scale and faster than SHA-256 in CPython.
"""

from __future__ import annotations

import hashlib


def digest(*parts: str) -> str:
    """Hex digest of ``parts``, each terminated by NUL so ("ab", "c") != ("a", "bc"). Text
    carrying bytes that are not UTF-8 (a file name or an environment value, as Python
    decodes them: surrogateescape) is digested as those bytes."""
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(p.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()


def flat(d: dict[str, str]) -> str:
    """Canonical text of a flat str->str mapping; much cheaper than json.dumps."""
    return "\x1e".join(f"{k}\x1f{d[k]}" for k in sorted(d))


def upstream_digest(outputs: dict[str, str], output_files: dict[str, str], status: str) -> str:
    """What downstream steps fingerprint of a step: its output values, files and status."""
    return digest(flat(outputs), flat(output_files), status)


def combine(fields: dict[str, str], inputs: dict[str, str], upstream: dict[str, str]) -> str:
    """A step's fingerprint from its three parts (see ``manifests/fingerprint``)."""
    return digest(flat(fields), flat(inputs), flat(upstream))
