"""The local demo: one GongWebhook, end to end, on this machine.

    scripts/demo up       control plane with the real node; the operator in-cluster from its image
                          (config/without-monitoring); Redis as a pod, the Snowflake stand-in on the
                          host behind a Service; a GongWebhook whose pods (the app image) become Ready
                          by their probes; signed webhooks sent to its Service; rows shown
    scripts/demo send N   send N more signed webhooks to the running demo
    scripts/demo status   what runs
    scripts/demo down     stop all of it (and the control plane) and remove .demo/

Every process it starts has a pid file under .demo/pids; `down` stops exactly those and deletes what it
created in the cluster.

Where the real node cannot run (not root, or another cluster on this machine owns it) the demo falls back
to the kwok-only path, and says so loudly: kwok "runs" the pods without running them, so the app is
started locally from the ConfigMap and Secret the operator rendered.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The Gong stand-in (signing, payloads) and the real node's helpers live with the tests (tests/support/).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
STATE = Path(os.environ.get("DEMO_DIR", ROOT / ".demo")).resolve()
PIDS = STATE / "pids"
LOGS = STATE / "logs"
VENV_BIN = Path(sys.executable).parent
DEVCLUSTER = ROOT / "scripts" / "devcluster"

NAMESPACE = "gong-demo"
NAME = "demo"
OPERATOR_NS = "gong-system"  # config/rbac puts the ServiceAccount here
OPERATOR_SA = "gong-webhook-operator"
REDIS_PORT = int(os.environ.get("DEMO_REDIS_PORT", "16380"))
FAKESNOW_PORT = int(os.environ.get("DEMO_FAKESNOW_PORT", "18580"))
APP_PORT = int(os.environ.get("DEMO_APP_PORT", "18088"))
OPERATOR_METRICS_PORT = int(os.environ.get("DEMO_OPERATOR_METRICS_PORT", "18089"))
OPERATOR_HEALTH_PORT = OPERATOR_METRICS_PORT + 1
N_WEBHOOKS = int(os.environ.get("DEMO_WEBHOOKS", "40"))
# scripts/devcluster's real node: its name, and the host's address on the pod bridge.
REAL_NODE, GATEWAY = "gwo-node", "10.88.0.1"
# scripts/devcluster's stand-in network: fakesnow listens there on 443, routed off the node like
# Snowflake, so the app reaches it through the egress rules of the NetworkPolicy the operator renders.
WAN_NETNS, WAN_SNOWFLAKE, WAN_HTTPS_PORT = "gwo-wan", "10.89.0.2", 443
NODE_ANNOTATIONS = {
    "scheduler.alpha.kubernetes.io/node-selector": "gong.dev/node=real",
    "scheduler.alpha.kubernetes.io/defaultTolerations":
        '[{"key":"gong.dev/node","operator":"Equal","value":"real","effect":"NoSchedule"}]',
}
APP_IMAGE = "ghcr.io/sophia-ai/gong-webhook:0.1.0"  # built by scripts/images, in the node's containerd


class Target:
    """Where the demo's app answers and what Gong signs; set once the mode is known."""

    real = False
    base_url = f"http://127.0.0.1:{APP_PORT}"
    public_url = f"http://127.0.0.1:{APP_PORT}/webhooks/gong"
    fakesnow_host = "127.0.0.1"
    fakesnow_port = FAKESNOW_PORT

_T0 = time.monotonic()
_step = 0


def step(msg: str) -> None:
    global _step
    _step += 1
    print(f"[demo {time.monotonic() - _T0:6.1f}s] {_step}. {msg}", flush=True)


def info(msg: str) -> None:
    print(f"             {msg}", flush=True)


def die(msg: str) -> None:
    print(f"[demo] FAILED: {msg}", file=sys.stderr, flush=True)
    raise SystemExit(1)


# ------------------------------------------------------------------ helpers


def cluster_env() -> dict[str, str]:
    out = subprocess.run([str(DEVCLUSTER), "env"], capture_output=True, text=True, check=True).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip('"').replace("$PATH", os.environ["PATH"])
    return env


def kubectl(*args: str, input: str | None = None, check: bool = True, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True,
                          env=env or cluster_env())
    if check and proc.returncode != 0:
        die(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def spawn(name: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
    PIDS.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=STATE, start_new_session=True)
    (PIDS / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def alive(name: str) -> int | None:
    pf = PIDS / f"{name}.pid"
    if not pf.exists():
        return None
    pid = int(pf.read_text())
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (OSError, IndexError):
        return None
    return None if state == "Z" else pid


def stop(name: str) -> None:
    pid = alive(name)
    if pid:
        # The whole session: uvicorn/kopf children go too.
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while alive(name) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(name):
            os.killpg(pid, signal.SIGKILL)
    (PIDS / f"{name}.pid").unlink(missing_ok=True)


def wait_port(port: int, what: str, timeout: float = 30, proc: str | None = None, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        if proc and not alive(proc):
            die(f"{what} exited; see {LOGS / (proc + '.log')}")
        time.sleep(0.1)
    die(f"timed out waiting for {what} on port {port}")


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def snowflake_connect() -> Any:
    import snowflake.connector

    return snowflake.connector.connect(
        account="demo", user="demo", password="demo-password", host=Target.fakesnow_host, port=Target.fakesnow_port,
        protocol="http", database="SOPHIA_AI", schema="GONG_WEBHOOKS", warehouse="COMPUTE_WH",
    )


# ------------------------------------------------------------------ steps


def start_control_plane() -> dict[str, str]:
    step("local control plane (scripts/devcluster up; the first run on a machine builds it)")
    t = time.monotonic()
    # `down` stops the control plane only if the demo started it: a developer's cluster stays up.
    was_up = subprocess.run([str(DEVCLUSTER), "status"], capture_output=True).returncode == 0
    if not was_up:
        (STATE / "started-devcluster").touch()
    subprocess.run([str(DEVCLUSTER), "up"], check=True, stdout=subprocess.DEVNULL)
    info(f"up in {time.monotonic() - t:.1f}s")
    env = cluster_env()
    node = kubectl("get", "node", REAL_NODE, "-o", "json", check=False, env=env)
    if node.returncode == 0 and any(c["type"] == "Ready" and c["status"] == "True"
                                    for c in json.loads(node.stdout)["status"]["conditions"]):
        Target.real = True
        Target.fakesnow_host, Target.fakesnow_port = WAN_SNOWFLAKE, WAN_HTTPS_PORT
        (STATE / "real-node").touch()
        info_node = json.loads(node.stdout)["status"]["nodeInfo"]
        info(f"real node {REAL_NODE}: kubelet {info_node['kubeletVersion']}, {info_node['containerRuntimeVersion']}")
    else:
        print("[demo] WARNING: no real node in this cluster (scripts/devcluster needs root, and only one cluster "
              "per machine can have it). FALLING BACK to kwok: pods are marked Ready without running, and the app "
              "runs as a local process from the rendered ConfigMap and Secret.", flush=True)
    return env


def install_operator(env: dict[str, str]) -> None:
    if Target.real:
        install_operator_in_cluster(env)
    else:
        install_operator_locally(env)


def install_operator_in_cluster(env: dict[str, str]) -> None:
    step("install the operator as documented: kubectl apply -k config/without-monitoring (CRD, RBAC, peering, "
         "2 replicas from its image)")
    # The namespace's pods go to the real node (the annotations are the dev cluster's; see scripts/devcluster).
    kubectl("create", "namespace", OPERATOR_NS, check=False, env=env)
    kubectl("annotate", "--overwrite", "namespace", OPERATOR_NS, *(f"{k}={v}" for k, v in NODE_ANNOTATIONS.items()),
            env=env)
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "config" / "without-monitoring"), env=env)
    (STATE / "operator-deployed").touch()
    proc = kubectl("-n", OPERATOR_NS, "rollout", "status", "deployment/gong-webhook-operator", "--timeout=180s",
                   check=False, env=env)
    if proc.returncode != 0:
        print(kubectl("-n", OPERATOR_NS, "get", "pods", "-o", "wide", env=env).stdout)
        die("the operator's pods did not become ready")
    pods = json.loads(kubectl("-n", OPERATOR_NS, "get", "pods", "-l", "app.kubernetes.io/component=operator",
                              "-o", "json", env=env).stdout)["items"]
    for pod in pods:
        info(f"pod {pod['metadata']['name']} on {pod['spec']['nodeName']}, ServiceAccount "
             f"{pod['spec']['serviceAccountName']}, Ready")


def install_operator_locally(env: dict[str, str]) -> None:
    step("install the CRD and the operator's RBAC (config/crd, config/rbac)")
    kubectl("apply", "-k", str(ROOT / "config" / "crd"), env=env)
    kubectl("wait", "--for=condition=Established", "crd/gongwebhooks.gong.sophia-ai.com", "--timeout=60s", env=env)
    kubectl("create", "namespace", OPERATOR_NS, check=False, env=env)
    kubectl("apply", "-k", str(ROOT / "config" / "rbac"), env=env)

    step(f"start the operator as ServiceAccount {OPERATOR_NS}/{OPERATOR_SA} (not as admin)")
    if alive("operator"):
        info("already running")
        return
    token = kubectl("-n", OPERATOR_NS, "create", "token", OPERATOR_SA, "--duration=24h", env=env).stdout.strip()
    admin = json.loads(Path(env["KUBECONFIG"]).read_text())
    kc = {
        "apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"],
        "users": [{"name": OPERATOR_SA, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": admin["clusters"][0]["name"], "user": OPERATOR_SA}}],
        "current-context": "operator",
    }
    kc_path = STATE / "operator.kubeconfig"
    kc_path.write_text(json.dumps(kc))
    kc_path.chmod(0o600)
    op_env = dict(os.environ, KUBECONFIG=str(kc_path))
    spawn("operator", [str(VENV_BIN / "gong-webhook-operator"), "--all-namespaces", "--standalone",
                       f"--metrics-port={OPERATOR_METRICS_PORT}",
                       f"--liveness=http://127.0.0.1:{OPERATOR_HEALTH_PORT}/healthz"], env=op_env)
    wait_port(OPERATOR_HEALTH_PORT, "operator liveness endpoint", 60, "operator")
    info(f"operator pid {alive('operator')}, metrics on :{OPERATOR_METRICS_PORT}, log {LOGS / 'operator.log'}")


def start_backends(env: dict[str, str]) -> None:
    if not Target.real:
        start_local_backends()
        return
    step(f"Redis as a pod behind Service redis (AOF always); fakesnow outside the cluster ({WAN_SNOWFLAKE}:"
         f"{WAN_HTTPS_PORT}, the devcluster's stand-in network) behind Service snowflake")
    from tests.support import node

    class Kube:
        def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                    timeout: float = 120) -> subprocess.CompletedProcess[str]:
            return kubectl(*args, input=input, check=check, env=env)

    node.node_namespace(Kube(), NAMESPACE)
    node.deploy_redis(Kube(), NAMESPACE)
    if not alive("fakesnow"):
        (STATE / "fakesnow").mkdir(parents=True, exist_ok=True)
        spawn("fakesnow", ["ip", "netns", "exec", WAN_NETNS, str(VENV_BIN / "fakesnow"), "-s",
                           "-p", str(WAN_HTTPS_PORT), "--host", WAN_SNOWFLAKE, "-d", str(STATE / "fakesnow")])
    wait_port(WAN_HTTPS_PORT, "fakesnow", 60, "fakesnow", host=WAN_SNOWFLAKE)
    node.snowflake_service(Kube(), NAMESPACE)


def start_local_backends() -> None:
    step(f"start a durable redis-server (:{REDIS_PORT}, appendfsync always) and a fakesnow server (:{FAKESNOW_PORT})")
    if not alive("redis"):
        (STATE / "redis").mkdir(parents=True, exist_ok=True)
        redis = shutil.which("redis-server") or die("redis-server missing")  # type: ignore[func-returns-value]
        spawn("redis", [str(redis), "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--dir", str(STATE / "redis"),
                        "--appendonly", "yes", "--appendfsync", "always", "--save", ""])
    if not alive("fakesnow"):
        (STATE / "fakesnow").mkdir(parents=True, exist_ok=True)
        spawn("fakesnow", [str(VENV_BIN / "fakesnow"), "-s", "-p", str(FAKESNOW_PORT),
                           "-d", str(STATE / "fakesnow")])
    wait_port(REDIS_PORT, "redis-server", 20, "redis")
    wait_port(FAKESNOW_PORT, "fakesnow", 60, "fakesnow")


def create_webhook(env: dict[str, str]) -> None:
    from cryptography.hazmat.primitives import serialization

    from tests.support.gong import new_private_key, public_key_b64

    step("generate a Gong-style RSA key pair and the source Secret; apply the GongWebhook")
    key_file = STATE / "gong-rule-private-key.pem"
    if key_file.exists():
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    else:
        key = new_private_key()
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_file.chmod(0o600)
    kubectl("create", "namespace", NAMESPACE, check=False, env=env)
    # The operator may write Secrets only where a platform team binds its secrets-writer role
    # (config/rbac/namespaced/secrets_writer_role_binding.yaml).
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "gong-webhook-operator-secrets-writer", "namespace": NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "gong-webhook-operator-secrets-writer"},
        "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": OPERATOR_NS}],
    }
    kubectl("apply", "-f", "-", input=json.dumps(binding), env=env)
    source = {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "gong-demo-source", "namespace": NAMESPACE},
        "type": "Opaque",
        "stringData": {
            # Gong's UI shows the rule's public key as bare base64 DER; paste it as is.
            "GONG_WEBHOOK_PUBLIC_KEYS": public_key_b64(key),  # type: ignore[arg-type]
            "SNOWFLAKE_ACCOUNT": "demo", "SNOWFLAKE_USER": "demo", "SNOWFLAKE_PASSWORD": "demo-password",
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(source), env=env)
    if Target.real:
        # In the cluster the app reaches Redis and the Snowflake stand-in through their Services.
        redis_url, sf_host, sf_port = "redis://redis:6379/0", "snowflake", "80"
        migrate_schema({"SNOWFLAKE_HOST": WAN_SNOWFLAKE, "SNOWFLAKE_PORT": str(WAN_HTTPS_PORT)})
    else:
        redis_url, sf_host, sf_port = f"redis://127.0.0.1:{REDIS_PORT}/0", "localhost", str(FAKESNOW_PORT)
    cr = {
        "apiVersion": "gong.sophia-ai.com/v1alpha1", "kind": "GongWebhook",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "image": APP_IMAGE,
            "gong": {"publicUrl": Target.public_url, "authMode": "jwt", "enrichmentEnabled": False},
            "redis": {"url": redis_url, "stream": "gong:webhooks"},
            "snowflake": {"database": "SOPHIA_AI", "schema": "GONG_WEBHOOKS", "warehouse": "COMPUTE_WH"},
            # The Snowflake endpoint is the local server; in production the connector derives it from
            # SNOWFLAKE_ACCOUNT. extraConfig reaches the app through the rendered ConfigMap like any setting.
            "extraConfig": {"SNOWFLAKE_HOST": sf_host, "SNOWFLAKE_PORT": sf_port, "SNOWFLAKE_PROTOCOL": "http"},
            "secrets": {"sourceRef": {"name": "gong-demo-source"},
                        "requiredKeys": ["GONG_WEBHOOK_PUBLIC_KEYS", "SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER",
                                         "SNOWFLAKE_PASSWORD"]},
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(cr), env=env)
    t = time.monotonic()
    proc = kubectl("-n", NAMESPACE, "wait", "--for=condition=Ready", f"gongwebhook/{NAME}", "--timeout=240s",
                   check=False, env=env)
    if proc.returncode != 0:
        print(kubectl("-n", NAMESPACE, "get", "gongwebhook", NAME, "-o", "yaml", env=env).stdout)
        print(kubectl("-n", NAMESPACE, "get", "pods", "-o", "wide", env=env).stdout)
        die("GongWebhook did not become Ready; see `kubectl describe gongwebhook` and the operator's log")
    how = "its pods Ready by their probes on the real node" if Target.real else "kwok runs its pods"
    info(f"gongwebhook/{NAME} Ready=True after {time.monotonic() - t:.1f}s ({how})")


def migrate_schema(overrides: dict[str, str]) -> None:
    """The admin's step: the loader runs no DDL. (The demo's stand-in has one role; in production this runs
    with a role that may create tables, see docs/runbook.md "Snowflake roles and grants".)"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOWFLAKE_", "GONG_", "REDIS_"))}
    env.update({"SNOWFLAKE_ACCOUNT": "demo", "SNOWFLAKE_USER": "demo", "SNOWFLAKE_PASSWORD": "demo-password",
                "SNOWFLAKE_DATABASE": "SOPHIA_AI", "SNOWFLAKE_SCHEMA": "GONG_WEBHOOKS", "SNOWFLAKE_PROTOCOL": "http",
                **overrides})
    migrate = subprocess.run([str(VENV_BIN / "gong-webhook-loader"), "migrate"], env=env,
                             capture_output=True, text=True, timeout=120)
    if migrate.returncode != 0:
        die(f"gong-webhook-loader migrate failed: {migrate.stderr.strip()[-500:]}")
    info("Snowflake schema ready (gong-webhook-loader migrate)")


def show_pods(env: dict[str, str]) -> None:
    step("the app's pods, as the kubelet runs them")
    pods = json.loads(kubectl("-n", NAMESPACE, "get", "pods", "-l", f"app.kubernetes.io/instance={NAME}",
                              "-o", "json", env=env).stdout)["items"]
    for pod in pods:
        (cs,) = pod["status"]["containerStatuses"]
        info(f"{pod['metadata']['name']} on {pod['spec']['nodeName']}: ready={cs['ready']} "
             f"restarts={cs['restartCount']} {cs['containerID'][:25]}... image {cs['image']}")
    svc = json.loads(kubectl("-n", NAMESPACE, "get", "service", NAME, "-o", "json", env=env).stdout)
    port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "http")
    Target.base_url = f"http://{svc['spec']['clusterIP']}:{port}"
    info(f"Service {NAME}: {Target.base_url} (ClusterIP, routed by kube-proxy)")
    save_target()


def save_target() -> None:
    (STATE / "target.json").write_text(json.dumps({"real": Target.real, "base_url": Target.base_url,
                                                   "public_url": Target.public_url,
                                                   "fakesnow_host": Target.fakesnow_host,
                                                   "fakesnow_port": Target.fakesnow_port}))


def load_target() -> None:
    f = STATE / "target.json"
    if f.exists():
        saved = json.loads(f.read_text())
        Target.real, Target.base_url = saved["real"], saved["base_url"]
        Target.public_url, Target.fakesnow_host = saved["public_url"], saved["fakesnow_host"]
        Target.fakesnow_port = saved.get("fakesnow_port", FAKESNOW_PORT)


def start_app(env: dict[str, str]) -> None:
    if Target.real:
        show_pods(env)
        return
    step("start the app locally from the ConfigMap and Secret the operator rendered in the cluster")
    if alive("app"):
        info("already running")
        return
    cm = json.loads(kubectl("-n", NAMESPACE, "get", "configmap", f"{NAME}-config", "-o", "json", env=env).stdout)
    sec = json.loads(kubectl("-n", NAMESPACE, "get", "secret", f"{NAME}-credentials", "-o", "json", env=env).stdout)
    app_env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOWFLAKE_", "GONG_", "REDIS_"))}
    app_env.update(cm.get("data", {}))
    app_env.update({k: base64.b64decode(v).decode() for k, v in sec.get("data", {}).items()})
    info(f"{len(cm.get('data', {}))} settings from configmap/{NAME}-config, "
         f"{len(sec.get('data', {}))} keys from secret/{NAME}-credentials (values not shown)")
    # Only the listen address differs from the pod: port 8080 may be taken on a workstation.
    app_env.update({"HOST": "127.0.0.1", "PORT": str(APP_PORT), "LOADER_METRICS_PORT": "0",
                    "LOADER_BLOCK_MS": "300"})
    app_env["METRICS_PORT"] = "0"  # /metrics stays on the app port; 9090 may be taken here
    migrate_schema({"SNOWFLAKE_HOST": "localhost", "SNOWFLAKE_PORT": str(FAKESNOW_PORT)})
    spawn("app", [str(VENV_BIN / "gong-webhook-app")], env=app_env)
    deadline = time.monotonic() + 60
    while http_get(f"http://127.0.0.1:{APP_PORT}/ready")[0] != 200:
        if not alive("app"):
            die(f"the app exited; see {LOGS / 'app.log'}")
        if time.monotonic() > deadline:
            die("the app did not become ready")
        time.sleep(0.2)
    info(f"app ready on http://127.0.0.1:{APP_PORT} (pid {alive('app')}, log {LOGS / 'app.log'})")
    save_target()


def send(n: int, with_bad: bool = True) -> dict[str, int]:
    """Send n signed webhooks (plus a forged one and a duplicate); tally the answers."""
    import httpx
    from cryptography.hazmat.primitives import serialization

    from tests.support.gong import GongSigner, call_payload, new_private_key

    key = serialization.load_pem_private_key((STATE / "gong-rule-private-key.pem").read_bytes(), password=None)
    signer = GongSigner(key, Target.public_url)  # type: ignore[arg-type]
    tally: dict[str, int] = {}
    first: tuple[bytes, dict[str, str]] | None = None
    with httpx.Client(base_url=Target.base_url, timeout=30) as client:
        for _ in range(n):
            body, headers = signer.signed(call_payload())
            first = first or (body, headers)
            r = client.post("/webhooks/gong", content=body, headers=headers)
            tally[f"signed -> {r.status_code}"] = tally.get(f"signed -> {r.status_code}", 0) + 1
        if with_bad and first:
            forger = GongSigner(new_private_key(), Target.public_url)
            body, headers = forger.signed(call_payload())
            r = client.post("/webhooks/gong", content=body, headers=headers)
            tally[f"forged (other key) -> {r.status_code} {r.json().get('reason', '')}"] = 1
            if r.status_code != 401:
                die(f"the forged webhook was not refused: HTTP {r.status_code}")
            r = client.post("/webhooks/gong", content=first[0], headers=signer.headers(first[0]))
            tally[f"duplicate of the first -> {r.status_code} {r.json().get('status', '')}"] = 1
            if r.status_code != 200:
                die(f"the duplicate was not recognised: HTTP {r.status_code}")
    if tally.get("signed -> 202", 0) != n:
        die(f"not every signed webhook was accepted: {tally}")
    return tally


def row_count() -> int:
    """Rows in the events table; 0 before the loader has created it."""
    import snowflake.connector

    conn = snowflake_connect()
    try:
        return int(conn.cursor().execute("SELECT COUNT(*) FROM GONG_WEBHOOK_EVENTS").fetchone()[0])
    except snowflake.connector.errors.ProgrammingError:
        return 0
    finally:
        conn.close()


def show(env: dict[str, str], expect_rows: int) -> None:
    """Print the CR, the rows and key metrics; fail unless exactly expect_rows rows landed, none twice."""
    step("what landed")
    print(kubectl("get", "gongwebhooks", "-A", env=env).stdout)
    conn = snowflake_connect()
    cur = conn.cursor()
    deadline = time.monotonic() + 60
    count = 0
    while time.monotonic() < deadline:
        count = row_count()
        if count >= expect_rows:
            break
        time.sleep(0.5)
    rows = cur.execute(
        "SELECT CALL_ID, TITLE, STARTED, DURATION_SECONDS, IS_TEST, "
        "PAYLOAD:callData.metaData.system::string FROM GONG_WEBHOOK_EVENTS ORDER BY STARTED LIMIT 5"
    ).fetchall()
    print(f"Snowflake SOPHIA_AI.GONG_WEBHOOKS.GONG_WEBHOOK_EVENTS: {count} rows (first 5 by start time)")
    print(f"  {'CALL_ID':20} {'TITLE':26} {'STARTED':26} {'DURATION':>8} {'IS_TEST':7} SYSTEM")
    for r in rows:
        print(f"  {r[0]:20} {r[1]:26} {r[2]!s:26} {r[3]:>8} {r[4]!s:7} {r[5]}")
    dupes = cur.execute("SELECT COUNT(*) - COUNT(DISTINCT CALL_ID) FROM GONG_WEBHOOK_EVENTS").fetchone()[0]
    print(f"  duplicate call ids: {dupes}")
    conn.close()
    if count != expect_rows or dupes:
        die(f"expected {expect_rows} rows and no duplicates in Snowflake, found {count} rows, {dupes} duplicates")
    wanted = ("gong_webhook_events_total", "gong_webhook_verification_failures_total",
              "gong_webhook_loaded_events_total", "gong_webhook_dlq_depth", "gong_webhook_consumer_lag",
              "gong_webhook_stream_length")
    urls = app_metrics_urls(env)
    print(f"\nKey metrics (app /metrics, summed over {len(urls)} pod(s)):" if Target.real
          else "\nKey metrics (app /metrics):")
    totals: dict[str, float] = {}
    gauges = ("gong_webhook_dlq_depth", "gong_webhook_consumer_lag", "gong_webhook_stream_length")
    for url in urls:
        for line in http_get(url)[1].splitlines():
            if line.startswith(wanted):
                key, _, value = line.rpartition(" ")
                # Stream gauges describe the one shared stream: every pod reports the same number.
                totals[key] = float(value) if key.startswith(gauges) else totals.get(key, 0.0) + float(value)
    for key, value in totals.items():
        print(f"  {key} {value}")
    print("Key metrics (operator /metrics" + (", the active replica):" if Target.real else "):"))
    _, text = http_get(operator_metrics_url(env))
    for line in text.splitlines():
        if line.startswith(("gong_operator_reconciles_total", "gong_operator_children_applied_total",
                            "gong_operator_gongwebhook_ready", "gong_operator_api_writes_total")):
            print(f"  {line}")


def app_metrics_urls(env: dict[str, str]) -> list[str]:
    if not Target.real:
        return [f"{Target.base_url}/metrics"]
    pods = json.loads(kubectl("-n", NAMESPACE, "get", "pods", "-l", f"app.kubernetes.io/instance={NAME}",
                              "-o", "json", env=env).stdout)["items"]
    return [f"http://{p['status']['podIP']}:8080/metrics" for p in pods if p["status"].get("podIP")]


def operator_metrics_url(env: dict[str, str]) -> str:
    if not Target.real:
        return f"http://127.0.0.1:{OPERATOR_METRICS_PORT}/metrics"
    # Pod IPs are on the node's bridge, which the host routes; the active replica has reconciled.
    pods = json.loads(kubectl("-n", OPERATOR_NS, "get", "pods", "-l", "app.kubernetes.io/component=operator",
                              "-o", "json", env=env).stdout)["items"]
    best = ""
    for pod in pods:
        url = f"http://{pod['status'].get('podIP', '')}:8080/metrics"
        if "gong_operator_reconciles_total{" in http_get(url)[1]:
            best = url
    return best or "http://0.0.0.0:1/"


def up() -> None:
    STATE.mkdir(exist_ok=True)
    env = start_control_plane()
    if Target.real:
        Target.public_url = f"http://{NAME}.{NAMESPACE}.svc/webhooks/gong"
    install_operator(env)
    start_backends(env)
    create_webhook(env)
    start_app(env)
    before = row_count()  # a second `up` adds to the rows of the first
    step(f"send {N_WEBHOOKS} signed Gong webhooks, one forged, one duplicate")
    for k, v in send(N_WEBHOOKS).items():
        info(f"{v:4} x {k}")
    show(env, before + N_WEBHOOKS)
    print(f"\n[demo] done in {time.monotonic() - _T0:.0f}s. Everything keeps running:")
    print(f"  eval \"$(scripts/devcluster env)\"; kubectl describe gongwebhook -n {NAMESPACE} {NAME}")
    print("  scripts/demo send 10       # more webhooks")
    print("  stop with: scripts/demo down")


def down() -> None:
    if (STATE / "real-node").exists() and subprocess.run([str(DEVCLUSTER), "status"],
                                                         capture_output=True).returncode == 0:
        env = cluster_env()
        print(f"[demo] deleting namespace {NAMESPACE}")
        subprocess.run(["kubectl", "delete", "namespace", NAMESPACE, "--wait=true", "--timeout=90s"], env=env,
                       capture_output=True)
        if (STATE / "operator-deployed").exists():
            print("[demo] deleting the operator's Deployment (CRDs and RBAC stay)")
            subprocess.run(["kubectl", "delete", "deployment", "-n", OPERATOR_NS, "gong-webhook-operator",
                            "--wait=true", "--timeout=90s"], env=env, capture_output=True)
    for name in ("app", "operator", "fakesnow", "redis"):
        if alive(name):
            print(f"[demo] stopping {name}")
        stop(name)
    if (STATE / "started-devcluster").exists():
        subprocess.run([str(DEVCLUSTER), "down"], check=False)
    else:
        print("[demo] the control plane was already running before the demo; left up (scripts/devcluster down)")
    shutil.rmtree(STATE, ignore_errors=True)
    print("[demo] down")


def status() -> None:
    for name in ("operator", "redis", "fakesnow", "app"):
        pid = alive(name)
        print(f"{name:10} {'running pid ' + str(pid) if pid else 'stopped'}")
    subprocess.run([str(DEVCLUSTER), "status"], check=False)


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "up"
    if cmd == "up":
        up()
    elif cmd == "down":
        down()
    elif cmd == "status":
        status()
    elif cmd == "send":
        load_target()
        n = int(argv[1]) if len(argv) > 1 else 10
        for k, v in send(n, with_bad=False).items():
            print(f"{v:4} x {k}")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
