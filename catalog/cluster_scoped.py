"""Which built-in Kubernetes kinds an environment template may create (Kubernetes 1.37).

Environment templates are applied into the instance's own namespace, so they may only contain
*namespaced* objects.  The sets below are keyed by ``(API group, kind)`` (``""`` is the core
group); the version does not matter, because a kind keeps its scope across versions.

Source: API discovery of a real ``kube-apiserver`` **v1.37.2** (the one ``tests/localkube``
builds from the official Go modules), started with ``--runtime-config=api/all=true`` and
``--feature-gates=AllAlpha=true,AllBeta=true`` so that alpha and beta groups are served too.
Every resource listed by ``GET /api/v1`` and ``GET /apis/<group>/<version>`` (for every group and
version of ``GET /apis``) was read, subresources (names containing ``/``) left out, and each
``(group, kind)`` filed by the resource's ``namespaced`` flag; ``CREATE_ONLY_KINDS`` are the
namespaced resources whose only verb is ``create``.  Kubernetes 1.37.2 with every API enabled
serves 39 cluster-scoped and 40 namespaced kinds; no kind is served under both scopes.

``tests/integration/test_cluster_scoped_kinds.py`` repeats that discovery on every run (on the
shared local cluster, and on one with all API versions enabled) and fails if a set drifts from
what the API server says, so a Kubernetes upgrade cannot silently open a hole.  Built-in kinds
not listed here at all (``*List`` kinds; ``autoscaling/Scale``, ``policy/Eviction`` and
``authentication.k8s.io/TokenRequest``, which exist only as subresources) are refused by
:mod:`catalog.templating` as well: only kinds in ``NAMESPACED_KINDS`` (and not create-only) pass.
"""

#: Kubernetes 1.37 version the sets were taken from.
DISCOVERED_FROM = "kube-apiserver v1.37.2, --runtime-config=api/all=true"

#: Cluster-scoped built-in kinds (``namespaced: false`` in discovery).  Never allowed in a template.
#: The review kinds (TokenReview, SubjectAccessReview, Self*Review) are create-only as well.
CLUSTER_SCOPED_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "ComponentStatus"),  # componentstatuses (v1; read-only)
        ("", "Namespace"),  # namespaces (v1)
        ("", "Node"),  # nodes (v1)
        ("", "PersistentVolume"),  # persistentvolumes (v1)
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),  # (v1, v1alpha1, v1beta1)
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"),  # (v1, v1alpha1, v1beta1)
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),  # (v1)
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),  # (v1)
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),  # (v1)
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),  # (v1)
        ("apiextensions.k8s.io", "CustomResourceDefinition"),  # (v1)
        ("apiregistration.k8s.io", "APIService"),  # (v1)
        ("authentication.k8s.io", "SelfSubjectReview"),  # (v1; create-only)
        ("authentication.k8s.io", "TokenReview"),  # (v1; create-only)
        ("authorization.k8s.io", "SelfSubjectAccessReview"),  # (v1; create-only)
        ("authorization.k8s.io", "SelfSubjectRulesReview"),  # (v1; create-only)
        ("authorization.k8s.io", "SubjectAccessReview"),  # (v1; create-only)
        ("certificates.k8s.io", "CertificateSigningRequest"),  # (v1)
        ("certificates.k8s.io", "ClusterTrustBundle"),  # (v1, v1beta1)
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"),  # (v1)
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),  # (v1)
        ("internal.apiserver.k8s.io", "StorageVersion"),  # (v1alpha1)
        ("networking.k8s.io", "IPAddress"),  # (v1)
        ("networking.k8s.io", "IngressClass"),  # (v1)
        ("networking.k8s.io", "ServiceCIDR"),  # (v1)
        ("node.k8s.io", "RuntimeClass"),  # (v1)
        ("rbac.authorization.k8s.io", "ClusterRole"),  # (v1)
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),  # (v1)
        ("resource.k8s.io", "DeviceClass"),  # (v1, v1beta1, v1beta2)
        ("resource.k8s.io", "DeviceTaintRule"),  # (v1, v1alpha3, v1beta2)
        ("resource.k8s.io", "ResourcePoolStatusRequest"),  # (v1alpha3)
        ("resource.k8s.io", "ResourceSlice"),  # (v1, v1beta1, v1beta2)
        ("scheduling.k8s.io", "PriorityClass"),  # (v1)
        ("storage.k8s.io", "CSIDriver"),  # (v1)
        ("storage.k8s.io", "CSINode"),  # (v1)
        ("storage.k8s.io", "StorageClass"),  # (v1)
        ("storage.k8s.io", "VolumeAttachment"),  # (v1)
        ("storage.k8s.io", "VolumeAttributesClass"),  # (v1)
        ("storagemigration.k8s.io", "StorageVersionMigration"),  # (v1, v1beta1)
    }
)

#: Namespaced built-in kinds (``namespaced: true`` in discovery).  Allowed in templates, except
#: ``CREATE_ONLY_KINDS``; the namespace's own controls (Pod Security Admission, ResourceQuota,
#: RBAC escalation checks) govern what they may do.
NAMESPACED_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "Binding"),  # (v1; create-only)
        ("", "ConfigMap"),
        ("", "Endpoints"),
        ("", "Event"),
        ("", "LimitRange"),
        ("", "PersistentVolumeClaim"),
        ("", "Pod"),
        ("", "PodTemplate"),
        ("", "ReplicationController"),
        ("", "ResourceQuota"),
        ("", "Secret"),
        ("", "Service"),
        ("", "ServiceAccount"),
        ("apps", "ControllerRevision"),
        ("apps", "DaemonSet"),
        ("apps", "Deployment"),
        ("apps", "ReplicaSet"),
        ("apps", "StatefulSet"),
        ("authorization.k8s.io", "LocalSubjectAccessReview"),  # (v1; create-only)
        ("autoscaling", "HorizontalPodAutoscaler"),  # (v1, v2)
        ("batch", "CronJob"),
        ("batch", "Job"),
        ("certificates.k8s.io", "PodCertificateRequest"),  # (v1, v1beta1)
        ("coordination.k8s.io", "Lease"),
        ("coordination.k8s.io", "LeaseCandidate"),  # (v1alpha2, v1beta1)
        ("discovery.k8s.io", "EndpointSlice"),
        ("events.k8s.io", "Event"),
        ("lifecycle.k8s.io", "Eviction"),  # (v1alpha1)
        ("lifecycle.k8s.io", "EvictionRequest"),  # (v1alpha1)
        ("networking.k8s.io", "Ingress"),
        ("networking.k8s.io", "NetworkPolicy"),
        ("policy", "PodDisruptionBudget"),
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "RoleBinding"),
        ("resource.k8s.io", "ResourceClaim"),  # (v1, v1beta1, v1beta2)
        ("resource.k8s.io", "ResourceClaimTemplate"),  # (v1, v1beta1, v1beta2)
        ("scheduling.k8s.io", "CompositePodGroup"),  # (v1alpha3)
        ("scheduling.k8s.io", "PodGroup"),  # (v1alpha3, v1beta1)
        ("scheduling.k8s.io", "Workload"),  # (v1alpha3, v1beta1)
        ("storage.k8s.io", "CSIStorageCapacity"),
    }
)

#: Namespaced kinds whose only verb is ``create`` (no get/patch): they cannot be applied and
#: are not objects that persist, so templates may not contain them either.
CREATE_ONLY_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "Binding"),
        ("authorization.k8s.io", "LocalSubjectAccessReview"),
    }
)
