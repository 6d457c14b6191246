"""The web shell (instances/shell): a real WebSocket client against the real ASGI server (the
``kube_proxy`` fixture), the session cookie of a real login, real kubectl in a real bubblewrap sandbox,
through the platform's proxy to the local control plane.

* every escape the issue lists is a named refusal of the policy (and audited as such);
* the sandbox holds nothing of the platform, even for a command the policy would refuse: kubectl
  reading ``/proc/self/environ`` sees only the sandbox's own four variables; no network but the relay;
  not the platform's uid; no project files;
* who may not use the instance gets the same close as for a missing one;
* limits: shells per user, idle timeout, maximum session, output rate; Ctrl-C and closing the page end
  the command's process; the session's credential is revoked at the end.
"""

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from django.test import Client
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from instances.models import KubeCredential
from instances.shell import policy, sandbox
from instances.shell.consumer import PROMPT
from paas.models import AuditEvent
from tests.support.instances import launch_instance
from tests.support.wait import wait_for

# --- the policy: each escape a named refusal ----------------------------------------------------------

ESCAPES = [
    ("kubectl create configmap x --from-file=/proc/self/environ", "local_file"),
    ("kubectl create configmap x --from-file /proc/self/environ", "local_file"),
    ("kubectl create secret generic x --from-env-file=/proc/self/environ", "local_file"),
    ("kubectl apply -f /etc/passwd", "local_file"),
    ("kubectl get -f/etc/passwd", "local_file"),
    ("kubectl get pods -o go-template-file=/proc/self/environ", "local_file"),
    ("kubectl get pods -ojsonpath-file=/proc/self/environ", "local_file"),
    ("kubectl proxy", "proxy"),
    ("kubectl proxy --port=0", "proxy"),
    ("kubectl port-forward pod/x 8080:80", "port_forward"),
    ("kubectl cp x:/etc/passwd /tmp/p", "cp"),
    ("kubectl edit pod x", "edit"),
    ("kubectl plugin list", "plugin"),
    ("kubectl-evil get pods", "plugin"),
    ("kubectl evil", "plugin"),
    ("kubectl get pods --server=https://10.0.0.1:6443", "server"),
    ("kubectl -shttps://10.0.0.1 get pods", "server"),
    ("kubectl get pods --token=abc", "token"),
    ("kubectl --kubeconfig=/root/.kube/config get pods", "kubeconfig"),
    ("kubectl get pods --context=admin", "context"),
    ("kubectl get pods --cluster=other", "context"),
    ("kubectl get pods --user=admin", "context"),
    ("kubectl get pods --as=system:admin", "impersonation"),
    ("kubectl get pods --as-group=system:masters", "impersonation"),
    ("kubectl exec -it pod -- sh", "interactive"),
    ("kubectl exec --stdin pod -- sh", "interactive"),
    ("kubectl attach pod", "interactive"),
    ("kubectl run x --image=busybox --rm -i -- sh", "interactive"),
    ("kubectl debug node/x -it --image=busybox", "debug"),
    ("kubectl config view --raw", "config"),
    ("kubectl create token default", "token"),
    ("kubectl get pods -v=9", "verbosity"),
    ("kubectl get pods | sh", "shell_syntax"),
    ("kubectl get pods; cat /etc/passwd", "shell_syntax"),
    ("kubectl get pods > /tmp/x", "shell_syntax"),
    ("bash", "not_allowed"),
    ("cat /proc/self/environ", "not_allowed"),
    ("kubectl get pods 'unterminated", "syntax"),
    ("helm repo add evil https://example.com/charts", "helm_repo"),
    ("helm install x https://example.com/x.tgz", "helm_url"),
    ("helm install x ./chart", "helm_write"),
    ("helm uninstall x", "helm_write"),
    ("helm plugin install https://example.com/p", "helm_plugin"),
    ("helm list --kube-apiserver=https://10.0.0.1", "helm_elsewhere"),
    ("helm list --kubeconfig=/root/.kube/config", "helm_elsewhere"),
]


@pytest.mark.parametrize(("line", "code"), ESCAPES)
def test_each_escape_is_a_named_refusal(line, code):
    with pytest.raises(policy.Refused) as refused:
        policy.check(line, helm=True)
    assert refused.value.code == code, refused.value.message
    assert refused.value.message


@pytest.mark.parametrize(
    "line",
    [
        "kubectl get pods",
        "kubectl get pods -n other -o wide",
        "kubectl get pods -o jsonpath={.items[*].metadata.name}",
        "kubectl describe pod x",
        "kubectl logs -f deploy/x --tail=10",
        "kubectl exec pod -- ls -la /",
        "kubectl create configmap x --from-literal=a=b",
        "kubectl auth can-i create pods",
        "kubectl delete pod x --grace-period=0",
        "kubectl rollout restart deploy/x",
        "kubectl get pods -w",
        "helm list",
        "helm status x",
        "helm get values x",
        "helm history x",
    ],
)
def test_ordinary_commands_are_allowed(line):
    command = policy.check(line, helm=True)
    assert command is not None and command.program == line.split()[0]


def test_helm_is_refused_when_not_configured():
    with pytest.raises(policy.Refused) as refused:
        policy.check("helm list", helm=False)
    assert refused.value.code == "not_allowed"


# --- the sandbox: nothing of the platform in it (the policy bypassed) ----------------------------------


@pytest.fixture
def shell_settings(settings, kubectl_binary, bwrap_binary):
    settings.PAAS_KUBECTL_BINARY = str(kubectl_binary)
    settings.PAAS_BWRAP_BINARY = str(bwrap_binary)
    return settings


def _sandboxed(argv_tail: list[str], workspace, timeout=30) -> subprocess.CompletedProcess:
    """Run ``argv_tail`` (instead of the relay and kubectl) in exactly a command's sandbox."""
    tls = sandbox.LoopbackTLS.create()
    kubeconfig = "apiVersion: v1\nkind: Config\n"
    fds = [sandbox._data_fd(t) for t in (kubeconfig, sandbox.RELAY_SOURCE, tls.cert_pem, tls.key_pem)]
    (workspace.directory / "relay.sock").touch()
    try:
        argv = sandbox.command_argv(
            program="kubectl",
            args=[],
            workspace=workspace,
            kubeconfig_fd=fds[0],
            relay_fd=fds[1],
            tls_fds=(fds[2], fds[3]),
        )
        argv = argv[: argv.index("--") + 1] + argv_tail
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, pass_fds=tuple(fds), env={}, check=False
        )
    finally:
        for fd in fds:
            os.close(fd)


PROBE = r"""
import json, os, socket
found = {"uid": os.getuid(), "gid": os.getgid(), "root": sorted(os.listdir("/")),
         "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
         "interfaces": [name for _, name in socket.if_nameindex()], "connect": {}}
for host, port in TARGETS:
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        found["connect"][f"{host}:{port}"] = "connected"
    except OSError as exc:
        found["connect"][f"{host}:{port}"] = type(exc).__name__
    s.close()
try:
    found["environ"] = open("/proc/self/environ").read()
except OSError as exc:
    found["environ"] = repr(exc)
print(json.dumps(found))
"""


def test_the_sandbox_holds_nothing_of_the_platform(shell_settings, monkeypatch, kube_proxy):
    monkeypatch.setenv("PAAS_SHELL_TEST_CANARY", "canary-value-7d1f")
    workspace = sandbox.Workspace.create()
    try:
        # kubectl itself, the policy bypassed: what it reads from /proc/self/environ is the sandbox's own
        done = _sandboxed(
            [
                f"{sandbox.BIN}/kubectl",
                "create",
                "configmap",
                "x",
                "--from-file=/proc/self/environ",
                "--dry-run=client",
                "-o",
                "json",
            ],
            workspace,
        )
        assert done.returncode == 0, done.stderr
        environ = json.loads(done.stdout)["data"]["environ"]
        names = sorted(item.split("=", 1)[0] for item in environ.split("\0") if item)
        assert names == ["HOME", "KUBECONFIG", "PATH", "PWD", "TERM"]  # (PWD: bwrap's, for --chdir)
        assert "canary-value" not in done.stdout and "DATABASE_URL" not in done.stdout

        proxy_port = kube_proxy.port
        targets = [("127.0.0.1", proxy_port), ("10.0.0.1", 443), ("1.1.1.1", 53)]
        probe = _sandboxed(
            [sandbox.RELAY_PYTHON, "-I", "-S", "-c", f"TARGETS = {targets!r}\n{PROBE}"], workspace
        )
        assert probe.returncode == 0, probe.stderr
        found = json.loads(probe.stdout)
        assert found["uid"] == sandbox.SANDBOX_UID != os.getuid()
        assert found["interfaces"] == ["lo"]  # its own network namespace: loopback only
        assert all(result != "connected" for result in found["connect"].values()), found["connect"]
        assert os.getpid() not in found["pids"] and len(found["pids"]) <= 3  # its own pid namespace
        assert found["root"] == ["dev", "lib", "lib64", "proc", "sandbox", "scratch", "tmp", "usr"]
        assert "canary" not in found["environ"]
        # nothing of the project: not its files, not the platform's binaries' directories
        listing = _sandboxed(
            [
                sandbox.RELAY_PYTHON,
                "-I",
                "-S",
                "-c",
                "import os; print(sorted(os.listdir('/sandbox')), os.path.exists("
                f"{str(Path.cwd())!r}), os.path.exists('/root'), os.path.exists('/work'))",
            ],
            workspace,
        )
        assert listing.stdout.split() == [
            "['bin',",
            "'kubeconfig',",
            "'relay.py',",
            "'relay.sock',",
            "'tls.crt',",
            "'tls.key']",
            "False",
            "False",
            "False",
        ], listing.stdout + listing.stderr
    finally:
        workspace.remove()


# --- the shell over its WebSocket -------------------------------------------------------------------


class Shell:
    """A WebSocket client of the shell: what it received so far, as text."""

    def __init__(self, ws):
        self.ws = ws
        self.text = ""

    def type(self, data: str) -> None:
        self.ws.send(json.dumps({"t": "i", "d": data}))

    def line(self, line: str) -> None:
        self.type(line + "\r")

    def run(self, line: str, timeout: float = 30) -> str:
        """Enter ``line`` and return what came back until the next prompt."""
        start = len(self.text)
        self.line(line)
        self.read_until(PROMPT, timeout=timeout, start=start)
        return self.text[start:]

    def read_until(self, needle: str, timeout: float = 30, start: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while needle not in self.text[start:]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not received in {timeout}s; got:\n{self.text[-3000:]}")
            try:
                self.text += self.ws.recv(timeout=left)
            except TimeoutError:
                continue
        return self.text

    def closed(self, timeout: float = 30) -> int:
        """Read until the server closes; returns the close code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.text += self.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else 1006
            except TimeoutError:
                break
        raise AssertionError(f"the shell did not close; got:\n{self.text[-2000:]}")


def _cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def _open(server, instance_id, user=None, *, origin=None) -> Shell:
    headers = {"Origin": origin or server.url}
    if user is not None:
        headers["Cookie"] = _cookie(user)
    ws = connect(
        f"{server.ws_url}/ws/instances/{instance_id}/shell/",
        additional_headers=headers,
        open_timeout=10,
        max_size=2**22,
    )
    return Shell(ws)


def _events(action, instance):
    return list(AuditEvent.objects.filter(action=action, target_id=str(instance.pk)).order_by("pk"))


@pytest.fixture
def shell(transactional_db, live, kube_proxy, shell_settings):
    """A ready instance, its owner, and the server (on transactional_db: Channels' session lookup runs
    on threads of its own, which must not share the test's transaction)."""
    instance = launch_instance(live, "shelled")
    return {"instance": instance, "owner": instance.owner, "server": kube_proxy, "world": live["world"]}


def _live_bwraps(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline and b"--unshare-all" in cmdline:
            found.append(int(entry))
    return found


@pytest.mark.kube
def test_kubectl_runs_through_the_proxy_refusals_are_audited_and_the_end_revokes(shell):
    instance, owner, server = shell["instance"], shell["owner"], shell["server"]
    term = _open(server, instance.pk, owner)
    term.read_until(PROMPT)
    credential = KubeCredential.objects.get(user=owner, instance=instance, via="shell")
    assert credential.revoked_at is None
    assert credential.expires_at > credential.created_at

    whoami = term.run("kubectl auth whoami -o jsonpath={.status.userInfo.username}")
    assert f"system:serviceaccount:{instance.namespace}:" in whoami  # the user's ServiceAccount, impersonated
    pods = term.run("kubectl get pods")
    assert "Unauthorized" not in pods and "Forbidden" not in pods and "[exit" not in pods, pods
    assert "refused (local_file)" in term.run("kubectl create configmap x --from-file=/proc/self/environ")
    assert "refused (proxy)" in term.run("kubectl proxy")
    if "helm" in sandbox.binaries():  # helm, read-only, through the same proxy
        releases = term.run("helm list")
        assert "NAME" in releases and "Error" not in releases, releases

    lines = [
        (e.details["line"], e.details["allowed"], e.details.get("refusal"))
        for e in _events("instance.shell_command", instance)
    ]
    assert lines == [
        ("kubectl auth whoami -o jsonpath={.status.userInfo.username}", True, None),
        ("kubectl get pods", True, None),
        ("kubectl create configmap x --from-file=/proc/self/environ", False, "local_file"),
        ("kubectl proxy", False, "proxy"),
        *([("helm list", True, None)] if "helm" in sandbox.binaries() else []),
    ]
    assert len(_events("instance.shell_open", instance)) == 1
    term.ws.close()
    wait_for(lambda: _events("instance.shell_close", instance), timeout=15, what="the close audited")
    credential.refresh_from_db()
    assert credential.revoked_at is not None
    assert _events("instance.shell_close", instance)[0].details["commands"] == len(lines)


@pytest.mark.kube
def test_who_may_not_use_the_instance_is_told_as_for_a_missing_one(shell):
    instance, server, world = shell["instance"], shell["server"], shell["world"]
    outsider = world.b.users["workspace_admin"]
    codes = []
    for user, instance_id in ((outsider, instance.pk), (shell["owner"], 999999), (None, instance.pk)):
        term = _open(server, instance_id, user)
        codes.append(term.closed())
    assert codes == [4404, 4404, 4404]
    assert not KubeCredential.objects.filter(via="shell").exists()
    with pytest.raises(Exception, match="403"):  # a foreign page's WebSocket (Origin): refused
        _open(server, instance.pk, shell["owner"], origin="https://evil.example")
    # the page itself: 404 alike
    client = Client()
    client.force_login(outsider)
    assert client.get(f"/instances/{instance.pk}/shell/").status_code == 404
    client.force_login(shell["owner"])
    page = client.get(f"/instances/{instance.pk}/shell/")
    assert page.status_code == 200 and b"vendor/xterm.js" in page.content
    assert (
        f'href="/instances/{instance.pk}/shell/"'.encode() in client.get(f"/instances/{instance.pk}/").content
    )


@pytest.mark.kube
def test_limits_shells_per_user_idle_and_max_session(shell, settings):
    instance, owner, server = shell["instance"], shell["owner"], shell["server"]
    settings.PAAS_SHELL_MAX_PER_USER = 1
    first = _open(server, instance.pk, owner)
    first.read_until(PROMPT)
    second = _open(server, instance.pk, owner)
    assert second.closed() == 4409 and "shells open already" in second.text
    first.ws.close()
    wait_for(lambda: _events("instance.shell_close", instance), timeout=15, what="the first shell closed")

    settings.PAAS_SHELL_IDLE_SECONDS = 1
    idle = _open(server, instance.pk, owner)
    assert idle.closed(timeout=20) == 4408 and "idle too long" in idle.text

    settings.PAAS_SHELL_IDLE_SECONDS = 900
    settings.PAAS_SHELL_MAX_SECONDS = 2
    longest = _open(server, instance.pk, owner)
    assert longest.closed(timeout=20) == 4408 and "maximum length" in longest.text
    closes = wait_for(
        lambda: (
            len(_events("instance.shell_close", instance)) == 3 and _events("instance.shell_close", instance)
        ),
        timeout=15,
        what="three closes audited",
    )
    assert [e.details["reason"] for e in closes] == ["closed", "idle", "max session"]
    assert not KubeCredential.objects.filter(via="shell", revoked_at__isnull=True).exists()


@pytest.mark.kube
def test_output_rate_ctrl_c_and_closing_the_page_end_the_process(shell, settings):
    instance, owner, server = shell["instance"], shell["owner"], shell["server"]
    rate = 4096
    settings.PAAS_SHELL_OUTPUT_BYTES_PER_SECOND = rate
    term = _open(server, instance.pk, owner)
    term.read_until(PROMPT)
    before = len(term.text)
    started = time.monotonic()
    term.line("kubectl explain pods --recursive")  # tens of kilobytes
    term.read_until("KIND:", start=before)
    measured_until = time.monotonic() + 3
    while (left := measured_until - time.monotonic()) > 0:  # what arrives over 3 s, measured
        with contextlib.suppress(TimeoutError):
            term.text += term.ws.recv(timeout=left)
    elapsed = time.monotonic() - started
    received = len(term.text) - before
    assert rate < received <= rate * (elapsed + 1) + 200, (received, elapsed)
    marker = "paas-shell-"  # the sandboxes' bind arguments name the session's directory
    running = wait_for(lambda: _live_bwraps(marker), timeout=10, what="the command's sandbox")
    term.type("\x03")
    term.read_until("^C\r\n" + PROMPT)  # the command ended, its unread output dropped
    wait_for(
        lambda: not set(running) & set(_live_bwraps(marker)), timeout=10, what="Ctrl-C killed the sandbox"
    )

    term.line("kubectl get pods -w")  # runs until stopped
    running = wait_for(lambda: _live_bwraps(marker), timeout=10, what="the watch's sandbox")
    term.ws.close()  # the page closed
    wait_for(
        lambda: not set(running) & set(_live_bwraps(marker)), timeout=10, what="closing ended the process"
    )
    wait_for(lambda: _events("instance.shell_close", instance), timeout=15, what="the close audited")
