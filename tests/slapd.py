"""A real OpenLDAP server (Debian's ``slapd``) for the LDAP login and sync tests.

Started in the foreground on 127.0.0.1 with free ports (plain LDAP, which also offers
StartTLS, and ldaps://), everything under one temporary directory, stopped by PID.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from cc.proc import stop_subprocess
from tests.helpers import free_port
from tests.tlsfiles import TLSFiles, make_tls_files

SUFFIX = "dc=example,dc=com"
ADMIN_DN = f"cn=admin,{SUFFIX}"
PEOPLE = f"ou=people,{SUFFIX}"
ADMIN_PASSWORD = "ldap-admin-secret"


def available() -> bool:
    return bool(shutil.which("slapd") or Path("/usr/sbin/slapd").exists()) and bool(shutil.which("ldapadd"))


class Slapd:
    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.tls_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.tls: TLSFiles | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://localhost:{self.tls_port}"  # the certificate is for localhost (and 127.0.0.1)

    def start(self, timeout: float = 20) -> Slapd:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "db").mkdir(exist_ok=True)
        self.tls = make_tls_files(self.root / "tls", prefix="ldap")
        conf = f"""\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {self.root}/slapd.pid
argsfile {self.root}/slapd.args
TLSCACertificateFile {self.tls.ca}
TLSCertificateFile {self.tls.cert}
TLSCertificateKeyFile {self.tls.key}
database mdb
maxsize 104857600
suffix "{SUFFIX}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PASSWORD}
directory {self.root}/db
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
"""
        (self.root / "slapd.conf").write_text(conf)
        slapd = shutil.which("slapd") or "/usr/sbin/slapd"
        log = open(self.root / "slapd.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [slapd, "-d", "0", "-f", str(self.root / "slapd.conf"),
             "-h", f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.tls_port}/"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("slapd exited:\n" + (self.root / "slapd.log").read_text(errors="replace"))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("slapd did not listen in time")
        self.ldapadd(f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"
                     f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n")
        return self

    def stop(self) -> None:
        stop_subprocess(self.proc, 10)

    def _run(self, tool: str, *args: str, stdin: str | None = None) -> None:
        r = subprocess.run([tool, "-x", "-H", self.url, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD, *args],
                           input=stdin, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"{tool} failed ({r.returncode}): {r.stderr}")

    def ldapadd(self, ldif: str) -> None:
        self._run("ldapadd", stdin=ldif)

    def add_user(self, uid: str, password: str, *, gecos: str | None = None, cn: str | None = None,
                 uid_number: int = 10000, gid_number: int = 100, ou: str = PEOPLE) -> str:
        dn = f"uid={uid},{ou}"
        lines = [f"dn: {dn}", "objectClass: inetOrgPerson", "objectClass: posixAccount", f"uid: {uid}",
                 f"cn: {cn or uid.title()}", f"sn: {uid}", f"uidNumber: {uid_number}", f"gidNumber: {gid_number}",
                 f"homeDirectory: /home/{uid}", f"userPassword: {password}"]
        if gecos:
            lines.append(f"gecos: {gecos}")
        self.ldapadd("\n".join(lines) + "\n")
        return dn

    def replace(self, dn: str, attr: str, value: str) -> None:
        self._run("ldapmodify", stdin=f"dn: {dn}\nchangetype: modify\nreplace: {attr}\n{attr}: {value}\n")

    def delete(self, dn: str) -> None:
        self._run("ldapdelete", dn)
