"""deploy/nginx-postbacks.conf, run by a real nginx: no access or error log line carries the `token`
parameter, whatever the request ends in (502 with gunicorn down, 413, the port-80 redirect).

Skipped where nginx is not installed. The site file is used as shipped, with only what a test
needs changed: ports, file paths, a self-signed certificate, and (nginx before 1.25.1) no
`http2 on;`, which those versions do not know.
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import ssl
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.site.test_settings import BASE_DIR, free_port

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
SITE = BASE_DIR / "deploy" / "nginx-postbacks.conf"
SECRET = "planted-nginx-credential-5d41402abc4b2a76"


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "postbacks.example.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def nginx_version() -> tuple[int, ...]:
    out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=True).stderr
    return tuple(int(n) for n in re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out).groups())


def site_for_test(root: Path, http_port: int, https_port: int, *, error_level: str | None = None) -> str:
    text = SITE.read_text()
    sample = text.split("# /etc/nginx/postbacks-proxy.conf:", 1)[1]  # the include, given at the end
    proxy = "\n".join(line.removeprefix("#   ") for line in sample.splitlines() if line.startswith("#   "))
    (root / "proxy.conf").write_text(proxy)
    cert, key = self_signed(root)
    replacements = {
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "listen [::]:80;": "",
        "listen [::]:443 ssl;": "",
        "server 127.0.0.1:8000": f"server 127.0.0.1:{free_port()}",  # nobody listens: 502
        "/etc/nginx/postbacks-proxy.conf": str(root / "proxy.conf"),
        "/etc/letsencrypt/live/postbacks.example.com/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/postbacks.example.com/privkey.pem": str(key),
        "/var/log/nginx/": str(root / "logs") + "/",
        "/srv/postbacks/staticfiles/": str(root) + "/",
    }
    if nginx_version() < (1, 25, 1):
        replacements["http2 on;"] = ""
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    if error_level:
        text = text.replace("postbacks.error.log emerg;", f"postbacks.error.log {error_level};")
    return text


def run_nginx_and_send_credentials(tmp_path: Path, **site_options) -> dict[str, str]:
    """Every log file nginx wrote while answering requests that carry ?token=SECRET."""
    (tmp_path / "logs").mkdir()
    http_port, https_port = free_port(), free_port()
    (tmp_path / "site.conf").write_text(site_for_test(tmp_path, http_port, https_port, **site_options))
    temp = {name: tmp_path / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    (tmp_path / "nginx.conf").write_text(
        f"""
        user root;
        daemon off;
        pid {tmp_path}/nginx.pid;
        error_log {tmp_path}/logs/global-error.log info;
        events {{}}
        http {{
            access_log {tmp_path}/logs/global-access.log;
            client_body_temp_path {temp["body"]};
            proxy_temp_path {temp["proxy"]};
            fastcgi_temp_path {temp["fastcgi"]};
            uwsgi_temp_path {temp["uwsgi"]};
            scgi_temp_path {temp["scgi"]};
            include {tmp_path}/site.conf;
        }}
        """
    )
    check = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], capture_output=True)
    assert check.returncode == 0, check.stderr.decode()
    server = subprocess.Popen(
        [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=0.1).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                threading.Event().wait(0.05)  # waiting on the server process, not on a clock under test
        insecure = ssl._create_unverified_context()
        answers = []
        for method, port, path, body in [
            ("GET", https_port, f"/postbacks/impact/?ActionId=A1&token={SECRET}", None),  # gunicorn down: 502
            ("POST", https_port, f"/postbacks/impact/?token={SECRET}", b"x" * 100_000),  # over 64k: 413
            ("GET", http_port, f"/postbacks/impact/?token={SECRET}", None),  # port 80: 301
            ("GET", http_port, f"/healthz?token={SECRET}", None),  # proxied on 80: 502
        ]:
            if port == https_port:
                connection = http.client.HTTPSConnection("127.0.0.1", port, context=insecure, timeout=10)
            else:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                connection.request(method, path, body=body, headers={"Host": "postbacks.example.com"})
                answers.append(connection.getresponse().status)
            except (ConnectionError, http.client.HTTPException):
                answers.append(None)  # nginx may close before reading a body it refuses
            finally:
                connection.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert answers[0] == 502 and answers[2] == 301 and answers[3] == 502, answers
    return {path.name: path.read_text() for path in (tmp_path / "logs").iterdir()}


def test_no_nginx_log_line_carries_the_token_parameter(tmp_path):
    logs = run_nginx_and_send_credentials(tmp_path)
    access = logs["postbacks.access.log"]
    assert '"GET /postbacks/impact/" 502' in access
    assert '"POST /postbacks/impact/" 413' in access
    assert '"GET /postbacks/impact/" 301' in access
    for name, text in logs.items():
        assert SECRET not in text, f"{name} carries the credential"


def test_nginx_error_lines_do_carry_the_query_string_which_is_why_the_site_logs_none(tmp_path):
    logs = run_nginx_and_send_credentials(tmp_path, error_level="error")
    assert SECRET in logs["postbacks.error.log"]
