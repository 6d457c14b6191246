"""Service instances in tests: a small service template of our own and the helper that deploys a service
onto a compute instance to ready on the local control plane (``deploy_service``, with the ``live``
fixture of tests/integration/conftest.py and ``tests.support.instances.launch_instance``)."""

from catalog import services as catalog_services
from catalog.models import ServiceProfile
from instances import deployer, service_instances
from instances.models import Run, ServiceInstance

#: A tiny web service: a Deployment (replicas, CPU and memory from inputs, optional GPUs), its Service, an
#: Ingress on the platform-assigned host, a Secret holding a token, and an optional volume claim.
WEB_MANIFESTS = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ instance.name }}
  labels: {app: {{ instance.name }}}
spec:
  replicas: {{ inputs.replicas }}
  selector:
    matchLabels: {app: {{ instance.name }}}
  template:
    metadata:
      labels: {app: {{ instance.name }}}
    spec:
      runtimeClassName: kata
      containers:
        - name: web
          image: registry.example/web:1
          env:
            - {name: MODE, value: {{ inputs.mode | tojson }}}
          securityContext:
            runAsNonRoot: true
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
            seccompProfile: {type: RuntimeDefault}
          resources:
            requests: {cpu: "{{ inputs.cpu_millis }}m", memory: "{{ inputs.memory_mib }}Mi"}
            limits:
              cpu: "{{ inputs.cpu_millis }}m"
              memory: "{{ inputs.memory_mib }}Mi"
{% if inputs.gpus %}
              nvidia.com/gpu: {{ inputs.gpus }}
{% endif %}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ instance.name }}
spec:
  selector: {app: {{ instance.name }}}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ instance.name }}
spec:
{% if ingress.class_name %}
  ingressClassName: {{ ingress.class_name | tojson }}
{% endif %}
{% if ingress.tls %}
  tls: [{hosts: [{{ ingress.host | tojson }}]}]
{% endif %}
  rules:
    - host: {{ ingress.host | tojson }}
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: {{ instance.name }}, port: {number: 80}}}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ instance.name }}-token
type: Opaque
stringData:
  token: {{ inputs.token | tojson }}
{% if inputs.volume_gib %}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ instance.name }}-data
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: "{{ inputs.volume_gib }}Gi"}}
{% endif %}
"""

WEB_INPUTS = [
    {"name": "replicas", "type": "number", "required": True, "default": 1},
    {"name": "cpu_millis", "type": "number", "required": True, "default": 100},
    {"name": "memory_mib", "type": "number", "required": True, "default": 64},
    {"name": "gpus", "type": "number", "required": False, "default": 0},
    {"name": "volume_gib", "type": "number", "required": False, "default": 0},
    {"name": "mode", "type": "select", "required": True, "default": "dev", "options": ["dev", "prod"]},
    {"name": "note", "type": "text", "required": False},
    {"name": "admin_only", "type": "text", "required": False, "default": "fixed"},
    {"name": "token", "type": "secret", "required": False, "generate": True},
]
WEB_OUTPUTS = [
    {"name": "url", "source": {"type": "template", "value": "{{ service.url }}"}},
    {
        "name": "host",
        "source": {
            "type": "field",
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "name": "{{ instance.name }}",
            "path": "spec.rules[0].host",
        },
    },
    {"name": "token", "source": {"type": "secret", "name": "{{ instance.name }}-token", "key": "token"}},
    {"name": "internal", "source": {"type": "template", "value": "{{ instance.namespace }}"}},
]
WEB_INPUT_SETTINGS = {
    "replicas": {"default": 1, "required": True, "exposed": True, "overridable": True},
    "cpu_millis": {"default": 100, "required": True, "exposed": True, "overridable": True},
    "memory_mib": {"default": 64, "required": True, "exposed": True, "overridable": True},
    "gpus": {"default": 0, "required": False, "exposed": True, "overridable": True},
    "volume_gib": {"default": 0, "required": False, "exposed": True, "overridable": True},
    "mode": {"default": "dev", "required": True, "exposed": True, "overridable": False},
    "note": {"default": None, "required": False, "exposed": True, "overridable": True},
    "admin_only": {"default": "fixed", "required": False, "exposed": False, "overridable": False},
    "token": {"default": None, "required": False, "exposed": False, "overridable": False},
}
WEB_OUTPUT_SETTINGS = {
    "url": {"shown": True, "label": "Web URL"},
    "host": {"shown": False, "label": "Host"},
    "token": {"shown": True, "label": "Access token"},
}


def make_service_profile(
    world,
    *,
    name: str = "web",
    manifests: str = WEB_MANIFESTS,
    inputs=None,
    outputs=None,
    input_settings=None,
    output_settings=None,
    project=None,
    actor=None,
    **fields,
) -> ServiceProfile:
    """A published service profile in tenant A's 'team' workspace (by its project PaaS admin) on a freshly
    published template version (``WEB_MANIFESTS`` unless told)."""
    actor = actor or world.a.users["paas_admin_org"]
    project = project or world.a.project
    template = catalog_services.template_create(actor=actor, project=project, name=f"{name}-tpl")
    version = catalog_services.template_version_create(
        actor=actor,
        template=template,
        version="v1",
        manifests=manifests,
        inputs=WEB_INPUTS if inputs is None else inputs,
        outputs=WEB_OUTPUTS if outputs is None else outputs,
    )
    version = catalog_services.template_version_publish(actor=actor, version=version)
    fields.setdefault("service_type", ServiceProfile.ServiceType.CUSTOM)
    return catalog_services.profile_create(
        actor=actor,
        model=ServiceProfile,
        project=project,
        name=name,
        template_version=version,
        published=True,
        input_settings=WEB_INPUT_SETTINGS if input_settings is None else input_settings,
        output_settings=WEB_OUTPUT_SETTINGS if output_settings is None else output_settings,
        **fields,
    )


def run_to_end(run: Run) -> str:
    """Execute a run as the worker does; the result (``ready``, ``deleted``, ``failed``...)."""
    return deployer.execute(run.pk)


def deploy_service(
    live: dict, compute_instance, profile, name: str, inputs=None, actor=None, **kwargs
) -> ServiceInstance:
    """Launch ``profile`` as ``name`` on ``compute_instance`` (by the instance's owner unless ``actor``)
    and run its deploy to ready on the local control plane."""
    service = service_instances.service_launch(
        actor=actor or compute_instance.owner,
        compute_instance=compute_instance,
        profile=profile,
        name=name,
        inputs=inputs if inputs is not None else {},
        **kwargs,
    )
    run = service.runs.get()
    result = run_to_end(run)
    assert result == "ready", (result, Run.objects.get(pk=run.pk).log)
    service.refresh_from_db()
    return service
