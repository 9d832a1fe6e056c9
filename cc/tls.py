"""HTTPS for the web (and optionally the ingest) listener: ``main.https-cert-file`` / ``https-key-file``.

The supervisor opens both files before it drops root (``main.user``), checks that they
load, and hands the open descriptors to the children that serve TLS; a child reads the
files by path when it may (so a renewed certificate needs only ``cc-supervise restart
web``) and otherwise from those descriptors, so the key file can stay readable by root
alone, as with cc-backend.  Contexts are built from the PEM bytes (through a memfd):
nothing is written to disk.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

SERVER_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"  # forward secrecy, AEAD only (TLS 1.2); TLS 1.3 has its own


class TLSError(Exception):
    """The certificate or key cannot be used (the message names the config key and file)."""


@dataclass(frozen=True)
class PemPair:
    cert: bytes
    key: bytes


def _read_fd(fd: int) -> bytes:
    out, offset = bytearray(), 0
    while chunk := os.pread(fd, 1 << 16, offset):
        out += chunk
        offset += len(chunk)
    return bytes(out)


def read_pair(cert_path: Path, key_path: Path, cert_fd: int | None = None, key_fd: int | None = None) -> PemPair:
    """The PEM files by path, or from descriptors the supervisor opened for us when the path is not readable."""
    def one(path: Path, fd: int | None, key: str) -> bytes:
        try:
            return path.read_bytes()
        except PermissionError:
            if fd is None:
                raise TLSError(f"main.{key}: {path}: permission denied") from None
        except OSError as e:
            if fd is None:
                raise TLSError(f"main.{key}: {path}: {e.strerror}") from None
        return _read_fd(fd)

    return PemPair(one(cert_path, cert_fd, "https-cert-file"), one(key_path, key_fd, "https-key-file"))


@contextlib.contextmanager
def _as_files(pair: PemPair):
    """Paths ``ssl`` can load (it takes no bytes): memfds, else a private temporary directory."""
    fds: list[int] = []
    usable = False
    try:
        for data in (pair.cert, pair.key):
            fd = os.memfd_create("cc-tls", os.MFD_CLOEXEC)
            fds.append(fd)
            os.write(fd, data)
        usable = all(os.access(f"/proc/self/fd/{fd}", os.R_OK) for fd in fds)
    except (AttributeError, OSError):
        usable = False
    if usable:
        try:
            yield [f"/proc/self/fd/{fd}" for fd in fds]
        finally:
            for fd in fds:
                os.close(fd)
        return
    for fd in fds:
        os.close(fd)
    with tempfile.TemporaryDirectory(prefix="cc-tls-") as d:  # mode 0700
        paths = []
        for name, data in (("cert.pem", pair.cert), ("key.pem", pair.key)):
            p = Path(d) / name
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            paths.append(str(p))
        yield paths


def server_context(pair: PemPair, alpn: tuple[str, ...] = ("h2", "http/1.1")) -> ssl.SSLContext:
    """A server context: TLS 1.2 or newer, forward-secret AEAD ciphers, no compression."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(SERVER_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    with _as_files(pair) as (cert, key):
        try:
            ctx.load_cert_chain(cert, key)
        except ssl.SSLError as e:
            raise TLSError(f"main.https-cert-file / main.https-key-file: certificate and key do not load "
                           f"(not PEM, or the key does not belong to the certificate): {e.reason or e}") from None
    return ctx


def pinned_client_context(cert_pem: bytes) -> ssl.SSLContext:
    """A client context that trusts exactly our own certificate, by any host name.

    For the web process forwarding ``/api/write`` to the ingest workers on the loopback
    address, which the site's certificate does not name.
    """
    ctx = ssl.create_default_context(cadata=cert_pem.decode("ascii", "replace"))
    ctx.check_hostname = False
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a CA-issued leaf is its own anchor here
    return ctx


def open_pair(cert_path: Path, key_path: Path) -> tuple[int, int]:
    """Supervisor: open both files (inheritable, kept open), check they load; errors name the key."""
    fds = []
    for path, key in ((cert_path, "https-cert-file"), (key_path, "https-key-file")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            for f in fds:
                os.close(f)
            raise TLSError(f"main.{key}: {path}: {e.strerror}") from None
        os.set_inheritable(fd, True)
        fds.append(fd)
    try:
        server_context(PemPair(_read_fd(fds[0]), _read_fd(fds[1])))
    except TLSError:
        for f in fds:
            os.close(f)
        raise
    return fds[0], fds[1]
