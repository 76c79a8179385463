"""Loading RSA private keys once: PEM clean-up, pass phrases, fingerprints.

Parsing a PEM key costs tens of milliseconds, so parsed keys are cached by a digest of
their bytes and pass phrase; the cache never holds the PEM text itself.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import TYPE_CHECKING

from .._errors import ConfigurationError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

_TRAILER = "OCI_API_KEY"
_cache: dict[bytes, RSAPrivateKey] = {}
_cache_lock = threading.Lock()


def normalize_pem(text: str | bytes) -> bytes:
    """Undo what copying a key through env vars and consoles does to it.

    Tolerates literal ``\\n`` escapes, CRLF, surrounding quotes and blank space, and the
    ``OCI_API_KEY`` line the OCI console appends after the key.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.strip().strip("'\"").strip()
    if "\\n" in text and "\n" not in text.strip():
        text = text.replace("\\r\\n", "\n").replace("\\n", "\n")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.strip() for line in text.split("\n")]
    lines = [line for line in lines if line and line != _TRAILER]
    # Encrypted PKCS#1 keys need the blank line that ends their Proc-Type/DEK-Info block.
    lines = [part for line in lines for part in ((line, "") if line.startswith("DEK-Info:") else (line,))]
    return ("\n".join(lines) + "\n").encode("ascii", errors="replace")


def load_private_key(pem: str | bytes, pass_phrase: str | bytes | None = None, *, source: str = "oci_key", param: str | None = None) -> RSAPrivateKey:
    """Parse a PEM RSA private key (PKCS#1 or PKCS#8, optionally encrypted), cached.

    A pass phrase given for a key that is not encrypted is ignored, as the OCI SDK does: a
    profile often inherits ``pass_phrase`` from ``[DEFAULT]`` while its own key is plain.
    ``source`` names the setting in errors; no error carries the key or a path.
    """
    param = param or source
    data = normalize_pem(pem)
    password = pass_phrase.encode() if isinstance(pass_phrase, str) else pass_phrase
    if b"ENCRYPTED" not in data:
        password = None
    digest = hashlib.sha256(data + b"\0" + (password or b"")).digest()
    key = _cache.get(digest)
    if key is not None:
        return key
    if b"-----BEGIN" not in data:
        raise ConfigurationError(
            f"{source} is not a PEM private key: expected text starting with "
            "'-----BEGIN PRIVATE KEY-----' or '-----BEGIN RSA PRIVATE KEY-----'",
            param=param,
        )
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    encrypted = b"ENCRYPTED" in data
    try:
        loaded = load_pem_private_key(data, password=password or None)
    except TypeError:
        # cryptography says TypeError for "encrypted but no password" (and the reverse, which
        # cannot happen here: the pass phrase of a plain key was dropped above).
        raise ConfigurationError(
            f"{source} is encrypted: pass its pass phrase as oci_pass_phrase (or pass_phrase in the config profile)",
            param="oci_pass_phrase",
        ) from None
    except ValueError:
        if encrypted:
            raise ConfigurationError(
                f"the pass phrase for {source} is wrong (oci_pass_phrase / pass_phrase)",
                param="oci_pass_phrase",
            ) from None
        raise ConfigurationError(
            f"{source} could not be parsed as a PEM private key", param=param
        ) from None
    except Exception:  # unsupported algorithms and similar: never echo the key
        raise ConfigurationError(f"{source} could not be parsed as a PEM private key", param=param) from None
    if not isinstance(loaded, RSAPrivateKey):
        raise ConfigurationError(
            f"{source} is a {type(loaded).__name__.lstrip('_')} key; OCI request signing needs an RSA key",
            param=param,
        )
    key = loaded
    with _cache_lock:
        _cache[digest] = key
    return key


def looks_like_pem(value: object) -> bool:
    """Key text rather than a path: a PEM armour line, a line break, or far longer than a path."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return isinstance(value, str) and ("-----BEGIN" in value or "PRIVATE KEY" in value or "\n" in value or len(value) > 4096)


def load_private_key_file(path: str, pass_phrase: str | bytes | None = None, *, source: str = "oci_key_file", param: str = "oci_key_file") -> RSAPrivateKey:
    """Read and parse a key file. Errors name ``source`` (the setting), never the path given:
    key text passed by mistake as a path would otherwise be printed."""
    if looks_like_pem(path):
        raise ConfigurationError(
            f"{source} holds key text, not a path: pass the PEM text as oci_key (or OCI_KEY) instead", param=param
        )
    if not isinstance(path, str) or not path.strip():
        raise ConfigurationError(f"{source} must be the path of a PEM key file", param=param)
    expanded = os.path.expanduser(path)
    try:
        with open(expanded, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigurationError(f"{source}: no file at the path given", param=param) from None
    except OSError as exc:
        raise ConfigurationError(f"{source}: cannot read the key file ({exc.strerror})", param=param) from None
    return load_private_key(data, pass_phrase, source=source, param=param)


def fingerprint(key: RSAPrivateKey) -> str:
    """OCI key fingerprint: MD5 of the DER SubjectPublicKeyInfo, as colon-joined hex pairs."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.md5(der, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))
