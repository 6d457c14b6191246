"""The platform's OCI image, built without a container daemon (``python -m deploy.image build``).

See ``recipe.py`` (what goes in) and ``build.py`` (how: mmdebstrap, uv, umoci; reproducible, cached by
content under ``~/.cache/gpu-paas/image/``)."""
