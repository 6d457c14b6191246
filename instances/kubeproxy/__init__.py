"""The platform as the authenticating Kubernetes API proxy (docs/architecture.md, "The kubectl proxy").

- ``credentials``: the kubeconfig's short-lived credential: issue, revoke, and the per-request grant
  (authenticated, and the instance permission checked at that moment).
- ``selectors``: the credentials a user may see (their own, or everyone's for who may change the
  instance), for the API and the instance page's "kubectl access" section.
- ``upstream``: one aiohttp session per cluster credential, under the outbound-address policy; requests
  are made as the platform's identity impersonating the user's per-instance ServiceAccount.
- ``app``: the ASGI application mounted at ``/k8s/`` (HTTP, streaming, and the WebSocket protocols of
  exec, attach and port-forward).
- ``auditing``: every forwarded request recorded without the org's audit-chain lock, then chained into
  the tenant's trail in batches.
"""
