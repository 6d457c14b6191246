"""Applications in tests: small Kubernetes YAML bundles that pass the cluster's guardrails and Pod Security
``restricted`` (the ``kata`` runtime, a restricted security context, resources), and the helper that runs
an application's queued run as the worker does (``run_app``)."""

from instances import deployer
from instances.models import Application, Run


def deployment(
    name: str, *, cpu: str = "100m", memory: str = "64Mi", env: str = "one", replicas: int = 1
) -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      runtimeClassName: kata
      containers:
        - name: web
          image: registry.example/web:1
          env: [{{name: VERSION, value: "{env}"}}]
          securityContext:
            runAsNonRoot: true
            allowPrivilegeEscalation: false
            capabilities: {{drop: [ALL]}}
            seccompProfile: {{type: RuntimeDefault}}
          resources:
            requests: {{cpu: "{cpu}", memory: "{memory}"}}
            limits: {{cpu: "{cpu}", memory: "{memory}"}}
"""


def service(name: str) -> str:
    return f"""\
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
"""


def config_map(name: str, value: str = "hello") -> str:
    return f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
data:
  greeting: {value}
"""


def bundle(*documents: str) -> str:
    return "---\n".join(documents)


def run_app(application: Application, *, kind: str | None = None) -> str:
    """Execute the application's newest run (of ``kind`` if given) as the worker does; its result."""
    runs = Run.objects.filter(application=application).order_by("-pk")
    if kind:
        runs = runs.filter(kind=kind)
    return deployer.execute(runs.first().pk)


def last_run(application: Application) -> Run:
    return Run.objects.filter(application=application).order_by("-pk").first()
