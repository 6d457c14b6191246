# The two set-up commands of the README:  `make run`  and  `make test`.
# Everything they need is installed from the project's own files (pyproject.toml + uv.lock).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.9
UV := var/tools/bin/uv
VENV := .venv
ADDR ?= 127.0.0.1:8000
TLS_PORT ?= 8443
DEMO_CLUSTER ?= 1

export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install run test lint vendor image bundle

$(UV):
	$(PYTHON) -m venv var/tools
	var/tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

## install: the virtual environment, exactly as locked (two installs are identical)
install: $(UV)
	$(UV) sync --frozen --python $(PYTHON)

## run: the platform on the embedded default (its own PostgreSQL server under var/postgres, a worker), with demo data,
## served by uvicorn (manage.py serve: pages, API, the kubectl proxy and the web shell's WebSockets)
run: install
	$(VENV)/bin/python manage.py migrate --noinput
	@rm -f var/demo-kubeconfig.path
	@if [ "$(DEMO_CLUSTER)" = "1" ] && command -v go >/dev/null 2>&1; then \
	  echo "Starting the demo Kubernetes cluster (built from source the first time: ~12 min; DEMO_CLUSTER=0 skips)"; \
	  $(VENV)/bin/python -m tests.localkube stop --name demo --dir var/demo-cluster >/dev/null 2>&1 || true; \
	  $(VENV)/bin/python -m tests.localkube start --name demo --kata --dir var/demo-cluster > var/demo-kubeconfig.path \
	    || { echo "The demo cluster did not start; the platform runs without capacity."; rm -f var/demo-kubeconfig.path; }; \
	fi
	@rm -f var/helm-binary.path
	@if [ -z "$(PAAS_HELM_BINARY)" ] && command -v go >/dev/null 2>&1; then \
	  echo "Building helm for applications' charts (tests/toolchain, cached; the first time: ~15 min)"; \
	  $(VENV)/bin/python -m tests.toolchain build helm > var/helm-binary.path \
	    || { echo "helm did not build; Helm charts cannot be rendered (K8s YAML still works)."; rm -f var/helm-binary.path; }; \
	fi
	@rm -f var/kubectl-binary.path
	@if [ -z "$(PAAS_KUBECTL_BINARY)" ] && command -v go >/dev/null 2>&1; then \
	  echo "Building kubectl for the web shell (tests/toolchain, cached; the first time: ~10 min)"; \
	  $(VENV)/bin/python -m tests.toolchain build kubectl > var/kubectl-binary.path \
	    || { echo "kubectl did not build; the web shell is unavailable (downloaded kubeconfigs still work)."; rm -f var/kubectl-binary.path; }; \
	fi
	@rm -f var/bwrap-binary.path
	@if [ -z "$(PAAS_BWRAP_BINARY)" ]; then \
	  echo "Fetching bubblewrap, the web shell's sandbox (tests/toolchain, cached)"; \
	  $(VENV)/bin/python -m tests.toolchain build bwrap > var/bwrap-binary.path \
	    || { echo "bwrap is unavailable; the web shell is unavailable."; rm -f var/bwrap-binary.path; }; \
	fi
	PAAS_DEMO_KUBECONFIG="$$(cat var/demo-kubeconfig.path 2>/dev/null)" $(VENV)/bin/python manage.py demo_setup
	$(VENV)/bin/python manage.py dev_tls var/tls
	@echo "Open http://$(ADDR)/  (studio at /studio/, API docs at /api/docs/; kubeconfigs reach the kubectl proxy at https://$(firstword $(subst :, ,$(ADDR))):$(TLS_PORT))"
	PAAS_HELM_BINARY="$${PAAS_HELM_BINARY:-$$(cat var/helm-binary.path 2>/dev/null)}" \
	PAAS_KUBECTL_BINARY="$${PAAS_KUBECTL_BINARY:-$$(cat var/kubectl-binary.path 2>/dev/null)}" \
	PAAS_BWRAP_BINARY="$${PAAS_BWRAP_BINARY:-$$(cat var/bwrap-binary.path 2>/dev/null)}" \
	PAAS_TLS_CERT_FILE=var/tls/server.crt PAAS_TLS_KEY_FILE=var/tls/server.key \
	PAAS_KUBE_PROXY_URL="$${PAAS_KUBE_PROXY_URL:-https://$(firstword $(subst :, ,$(ADDR))):$(TLS_PORT)}" \
	PAAS_KUBE_PROXY_CA_FILE="$${PAAS_KUBE_PROXY_CA_FILE:-var/tls/ca.crt}" \
	  $(VENV)/bin/python manage.py serve $(ADDR) --tls-port $(TLS_PORT)

## test: the whole suite on PostgreSQL and the local Kubernetes control plane (provisioned on demand)
test: install lint
	$(VENV)/bin/python -m tests.localkube build
	$(VENV)/bin/python -m tests.support.run $(ARGS)

## lint: ruff, the layers contract (pyproject.toml [tool.importlinter]: a wrong-way import fails) and the
## migrations policy (django-migration-linter: a migration that would break the running release fails
## unless it is a contract step; tests/support/lint_migrations.py). The linter renders each migration's
## SQL through a PostgreSQL connection: DATABASE_URL, or the suite's own server (started on demand).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	@url="$${DATABASE_URL:-$$($(VENV)/bin/python -m tests.support.postgres)}" && \
	  DATABASE_URL="$$url" $(VENV)/bin/python -m tests.support.lint_migrations

## bundle: the air-gapped bundle, $(BUNDLE_DIR)/gpu-paas-<version>.tar: the image (deploy/image, cached by content), the
## chart pinned to its digest, kubectl and helm (tests/toolchain, cached), install.sh and SHA256SUMS; prints its path
BUNDLE_DIR ?= var/bundle
bundle: install
	$(VENV)/bin/python -m deploy.bundle --out $(BUNDLE_DIR)

## vendor: refresh the portal's front-end packages from the npm registry (exact versions in
## frontend/package-lock.json) into paas/static/vendor/ (and axe-core, for the browser tests, into
## tests/browser/vendor/); both are committed: nothing loads from a CDN
vendor:
	cd frontend && npm ci --no-audit --no-fund
	cp frontend/node_modules/@picocss/pico/css/pico.min.css paas/static/vendor/pico.min.css
	cp frontend/node_modules/@picocss/pico/LICENSE.md paas/static/vendor/pico.LICENSE.md
	cp frontend/node_modules/htmx.org/dist/htmx.min.js paas/static/vendor/htmx.min.js
	cp frontend/node_modules/htmx.org/LICENSE paas/static/vendor/htmx.LICENSE
	cp frontend/node_modules/chart.js/dist/chart.umd.min.js paas/static/vendor/chart.umd.min.js
	cp frontend/node_modules/chart.js/LICENSE.md paas/static/vendor/chart.LICENSE.md
	cp frontend/node_modules/@kurkle/color/LICENSE.md paas/static/vendor/kurkle-color.LICENSE.md
	cp frontend/node_modules/@xterm/xterm/lib/xterm.js paas/static/vendor/xterm.js
	cp frontend/node_modules/@xterm/xterm/css/xterm.css paas/static/vendor/xterm.css
	cp frontend/node_modules/@xterm/xterm/LICENSE paas/static/vendor/xterm.LICENSE
	cp frontend/node_modules/@xterm/addon-fit/lib/addon-fit.js paas/static/vendor/xterm-addon-fit.js
	cp frontend/node_modules/@xterm/addon-fit/LICENSE paas/static/vendor/xterm-addon-fit.LICENSE
	mkdir -p tests/browser/vendor
	cp frontend/node_modules/axe-core/axe.min.js tests/browser/vendor/axe.min.js
	cp frontend/node_modules/axe-core/LICENSE tests/browser/vendor/axe.LICENSE

## image: the platform's OCI image (deploy/image: Debian's root file system from mmdebstrap, the locked venv,
## kubectl and helm, assembled with umoci; no container daemon; as root the first time). Cached by content
## under ~/.cache/gpu-paas/image/: prints {"layout": ..., "tag": ..., "digest": ...}
image: install
	$(VENV)/bin/python -m deploy.image build
