"""HTTPS with a self-signed certificate made here: web and ingest listeners, Secure cookies,
the plain-HTTP redirect, and clear errors for unusable certificate files."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cc.config import ConfigError, load_config
from cc.tls import PemPair, TLSError, server_context
from tests.helpers import Installation, free_port


def make_cert(directory: Path, name: str = "server") -> tuple[Path, Path]:
    """A self-signed ECDSA certificate for 127.0.0.1 and localhost (what a test site would make with openssl)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cc-py test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def inst(tmp_path_factory, certs):
    cert, key = certs
    redirect_port = free_port()
    i = Installation(tmp_path_factory.mktemp("tls"), ingest_workers=2, extra_config={
        "main": {"https-cert-file": str(cert), "https-key-file": str(key),
                 "redirect-http-to": "https://monitor.example.org/", "redirect-http-addr": f"127.0.0.1:{redirect_port}"},
        "metric-store": {"ingest-tls": True}})
    i.verify = ssl.create_default_context(cafile=str(cert))
    i.redirect_port = redirect_port
    assert i.cli("add-user", "admin:admin:pw-admin").returncode == 0
    i.start()
    try:
        yield i
    finally:
        i.stop()


def test_web_serves_https_only(inst):
    assert inst.web.startswith("https://")
    r = httpx.get(inst.web + "/api/healthz", verify=inst.verify)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["strict-transport-security"].startswith("max-age=")
    with pytest.raises(httpx.HTTPError):  # our certificate is not trusted by default: no silent fallback
        httpx.get(inst.web + "/api/healthz")
    plain = inst.web.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(plain + "/api/healthz", timeout=5)
    with httpx.Client(http2=True, verify=inst.verify) as c:  # ALPN offers h2 as well
        r = c.get(inst.web + "/api/healthz")
        assert r.status_code == 200 and r.http_version == "HTTP/2"


def test_login_cookie_is_secure(inst):
    with httpx.Client(base_url=inst.web, verify=inst.verify) as c:
        r = c.post("/login", json={"username": "admin", "password": "pw-admin"})
        assert r.status_code == 200
        assert "Secure" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
        r = c.post("/query", json={"query": "{ tags { id } }"}, headers={"Origin": inst.web})
        assert r.status_code == 200, r.text


def test_plain_http_redirects_keeping_path_and_query(inst):
    r = httpx.get(f"http://127.0.0.1:{inst.redirect_port}/monitoring/jobs/?cluster=c1&state=running",
                  follow_redirects=False)
    assert r.status_code == 301
    assert r.headers["location"] == "https://monitor.example.org/monitoring/jobs/?cluster=c1&state=running"
    r = httpx.post(f"http://127.0.0.1:{inst.redirect_port}/login", follow_redirects=False)
    assert r.status_code == 301 and r.headers["location"] == "https://monitor.example.org/login"


def test_ingest_over_https_direct_and_forwarded_by_the_web_process(inst):
    now = int(time.time())
    r = inst.write(f"cpu_load,hostname=n1,type=node value=1.5 {now}\n", verify=inst.verify)
    assert inst.ingest.startswith("https://") and r.status_code == 200, r.text
    # the web process forwards /api/write to the ingest workers, now over TLS with our certificate pinned
    r = inst.write(f"cpu_load,hostname=n2,type=node value=2.5 {now}\n", base=inst.web, verify=inst.verify)
    assert r.status_code == 200, r.text
    q = {"cluster": "c1", "from": now - 60, "to": now + 60, "queries": [
        {"metric": "cpu_load", "host": h} for h in ("n1", "n2")]}
    r = httpx.post(inst.web + "/api/query", content=orjson.dumps(q), verify=inst.verify,
                   headers={"Authorization": f"Bearer {inst.token()}"})
    assert r.status_code == 200, r.text
    assert [[v for v in res[0]["data"] if v is not None] for res in r.json()["results"]] == [[1.5], [2.5]]


def test_restarted_web_serves_tls_again(inst):
    assert inst.cli("restart", "web").returncode == 0
    inst.wait_ready()
    assert httpx.get(inst.web + "/api/healthz", verify=inst.verify).status_code == 200


def test_unusable_certificates_are_named(tmp_path, certs):
    cert, key = certs
    other_cert, other_key = make_cert(tmp_path, "other")
    with pytest.raises(TLSError, match="do not load"):
        server_context(PemPair(cert.read_bytes(), other_key.read_bytes()))
    base = {"main": {"https-cert-file": str(cert)}}
    (tmp_path / "config.json").write_bytes(orjson.dumps(base))
    with pytest.raises(ConfigError, match="main.https-cert-file is set but main.https-key-file is not"):
        load_config(tmp_path / "config.json")
    (tmp_path / "config.json").write_bytes(orjson.dumps({"metric-store": {"ingest-tls": True}}))
    with pytest.raises(ConfigError, match="metric-store.ingest-tls needs main.https-cert-file"):
        load_config(tmp_path / "config.json")
    (tmp_path / "config.json").write_bytes(orjson.dumps({"main": {"redirect-http-to": "monitor:443"}}))
    with pytest.raises(ConfigError, match="main.redirect-http-to: expected an absolute URL"):
        load_config(tmp_path / "config.json")
    # the supervisor refuses to start with a key that does not belong to the certificate, or a missing file
    for cert_file, key_file, message in ((cert, other_key, "do not load"), (tmp_path / "nope.crt", key, "nope.crt")):
        i = Installation(tmp_path / f"inst-{message[:4]}", extra_config={
            "main": {"https-cert-file": str(cert_file), "https-key-file": str(key_file)}})
        r = subprocess.run([sys.executable, "-m", "supervisor", "run", "--config", str(i.cfg.path)],
                           capture_output=True, text=True, timeout=60, cwd=i.root)
        assert r.returncode == 1 and message in r.stderr and "main.https-" in r.stderr, r.stderr


async def test_websocket_ingest_over_tls(inst):
    import trio
    import trio_websocket

    t = int(time.time()) - 10
    url = inst.ingest.replace("https://", "wss://") + "/api/ws?cluster=c1"
    headers = [(b"authorization", f"Bearer {inst.token()}".encode())]
    async with trio_websocket.open_websocket_url(url, ssl_context=inst.verify, extra_headers=headers) as ws:
        await ws.send_message(f"1\ncpu_load,hostname=wss1,type=node value=4 {t}".encode())
        answer = orjson.loads(await ws.get_message())
    assert answer["seq"] == 1 and answer["status"] == "ok" and answer["written"] == 1
    q = await trio.to_thread.run_sync(lambda: httpx.post(
        inst.web + "/api/query", verify=inst.verify, headers={"Authorization": f"Bearer {inst.token()}"},
        content=orjson.dumps({"cluster": "c1", "from": t - 10, "to": t + 10,
                              "queries": [{"metric": "cpu_load", "host": "wss1"}]})))
    assert [v for v in q.json()["results"][0][0]["data"] if v is not None] == [4]
