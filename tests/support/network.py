"""Network probes on the real node: connections made from inside pods, and stand-ins outside the cluster.

A probe runs Python in a pod (``kubectl exec``; the app image has it) and reports what the pod's
connection attempt met: ``open`` (TCP handshake done), ``refused`` (a TCP RST or an ICMP
unreachable: kube-router's NetworkPolicy rules REJECT with icmp-port-unreachable), ``timeout`` or
``error``. Every probe target listens, so anything but ``open`` means the path is blocked.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.support import node as n
from tests.support.net import wait_port
from tests.support.servers import VENV_BIN, stop_process

PROBE_PORT = 8080  # what each probe pod serves (python -m http.server), so it can be a target too

_CONNECT = r"""
import json, socket, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
try:
    socket.create_connection((host, port), timeout=timeout).close()
    print("open")
except ConnectionRefusedError:
    print("refused")
except (socket.timeout, TimeoutError):
    print("timeout")
except OSError as e:
    print("refused" if e.errno in (111, 113, 101) else f"error:{e.errno}")
"""

_HTTP = r"""
import http.client, json, sys
method, host, port, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
req = json.loads(sys.stdin.read() or "{}")
try:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request(method, path, body=(req.get("body") or "").encode(), headers=req.get("headers") or {})
    resp = conn.getresponse()
    print(json.dumps({"status": resp.status, "body": resp.read(2000).decode(errors="replace")}))
except OSError as e:
    print(json.dumps({"status": None, "error": type(e).__name__}))
"""

_RESOLVE = r"""
import socket, sys
try:
    print(socket.gethostbyname(sys.argv[1]))
except OSError as e:
    print(f"error:{e}")
"""


def probe_pod(namespace: str) -> dict[str, Any]:
    """A restricted pod running the app image as a plain HTTP server on PROBE_PORT."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "probe", "namespace": namespace, "labels": {"app.kubernetes.io/name": "probe"}},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "probe", "image": n.APP_IMAGE, "imagePullPolicy": "Never",
                "command": ["python", "-m", "http.server", str(PROBE_PORT), "--bind", "0.0.0.0",
                            "--directory", "/tmp"],
                "ports": [{"containerPort": PROBE_PORT}],
                "readinessProbe": {"tcpSocket": {"port": PROBE_PORT}, "periodSeconds": 2},
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "96Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
        },
    }


def _exec(cluster: n.Kubectl, namespace: str, pod: str, container: str | None, script: str, *args: str,
          stdin: str | None = None) -> str:
    c = ["-c", container] if container else []
    proc = cluster.kubectl("exec", "-i", "-n", namespace, pod, *c, "--", "python", "-c", script, *args,
                           input=stdin or "", check=False, timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"kubectl exec in {namespace}/{pod} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def connect(cluster: n.Kubectl, namespace: str, pod: str, host: str, port: int, *, container: str | None = None,
            timeout: float = 3) -> str:
    return _exec(cluster, namespace, pod, container, _CONNECT, host, str(port), str(timeout))


def http(cluster: n.Kubectl, namespace: str, pod: str, method: str, host: str, port: int, path: str, *,
         body: bytes = b"", headers: dict[str, str] | None = None, container: str | None = None) -> dict[str, Any]:
    out = _exec(cluster, namespace, pod, container, _HTTP, method, host, str(port), path,
                stdin=json.dumps({"body": body.decode(), "headers": headers or {}}))
    return dict(json.loads(out))


def resolve(cluster: n.Kubectl, namespace: str, pod: str, name: str, *, container: str | None = None) -> str:
    return _exec(cluster, namespace, pod, container, _RESOLVE, name)


class WanListener:
    """A plain HTTP server in the devcluster's stand-in network (``n.WAN_NETNS``), e.g. where the
    Gong API would be: reachable from pods only as traffic that leaves the node."""

    def __init__(self, workdir: Path, host: str, port: int) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.host, self.port = host, port
        self.log = open(workdir / f"wan-{host}-{port}.log", "wb")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", n.WAN_NETNS, str(VENV_BIN / "python"), "-m", "http.server", str(port),
             "--bind", host, "--directory", str(workdir)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(port, 20, host)

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def tls_secret(name: str, host: str) -> tuple[dict[str, Any], bytes]:
    """A kubernetes.io/tls Secret for ``host``, signed by a CA made here; returns it and the CA (PEM)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gwo test ingress CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "kubernetes.io/tls",
              "stringData": {"tls.crt": cert.public_bytes(pem).decode(), "tls.key": key_pem.decode()}}
    return secret, ca.public_bytes(pem)
