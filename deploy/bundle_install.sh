#!/bin/sh
# Installs (or upgrades) the GPU PaaS from this bundle alone: no network but the cluster's API server and,
# when given one, the provider's internal registry. Written by deploy/bundle.py (values below filled in).
#
#   ./install.sh [--namespace NS] [--release NAME] [--kubeconfig FILE] [--context NAME]
#                [--registry REPOSITORY [--registry-authfile FILE] [--registry-insecure]]
#                [--image-repository REPOSITORY]
#                [--values FILE]... [--set KEY=VALUE]... [--no-wait] [--verify-only] [-- HELM_ARGS...]
#
# 1. Checks every file of the bundle against SHA256SUMS (and refuses files it does not list) before anything.
# 2. --registry REPOSITORY: pushes the image, digest unchanged, to REPOSITORY (e.g.
#    registry.dc1.internal/platform/gpu-paas) with skopeo, crane or regctl, whichever is on PATH;
#    --registry-authfile: a Docker config.json with the registry's credentials (skopeo, crane);
#    --registry-insecure: plain HTTP or an unverified certificate (skopeo, crane).
#    Without it the nodes must already have the image (see "ctr import" printed below), and pods run
#    --image-repository (default: the chart's) @ the bundle's digest.
# 3. Creates the namespace when missing and labels it for Pod Security "restricted" (bin/kubectl).
# 4. helm upgrade --install with bin/helm and chart/, the image pinned to its digest.
set -eu

VERSION='@VERSION@'
CHART='@CHART@'
IMAGE_DIGEST='@IMAGE_DIGEST@'
IMAGE_REF_NAME='@IMAGE_REF_NAME@'

here=$(cd "$(dirname "$0")" && pwd)
namespace=gpu-paas
release=gpu-paas
registry=
authfile=
insecure=0
repository=
verify_only=0
wait=1
kube_args=
helm_args=

say() { printf '%s\n' "$*" >&2; }
die() { say "install.sh: $*"; exit 1; }
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
add_helm() { helm_args="$helm_args $(quote "$1")"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --namespace|-n) namespace=${2:?--namespace needs a value}; shift 2 ;;
    --release) release=${2:?--release needs a value}; shift 2 ;;
    --kubeconfig) kube_args="$kube_args --kubeconfig $(quote "${2:?--kubeconfig needs a file}")"; shift 2 ;;
    --context) kube_args="$kube_args --kube-context $(quote "${2:?--context needs a name}")"; shift 2 ;;
    --registry) registry=${2:?--registry needs a repository}; shift 2 ;;
    --registry-authfile) authfile=${2:?--registry-authfile needs a file}; shift 2 ;;
    --registry-insecure) insecure=1; shift ;;
    --image-repository) repository=${2:?--image-repository needs a repository}; shift 2 ;;
    --values|-f) add_helm --values; add_helm "${2:?--values needs a file}"; shift 2 ;;
    --set) add_helm --set; add_helm "${2:?--set needs KEY=VALUE}"; shift 2 ;;
    --no-wait) wait=0; shift ;;
    --verify-only) verify_only=1; shift ;;
    --help|-h) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    --) shift; for arg in "$@"; do add_helm "$arg"; done; break ;;
    *) die "unknown option $1 (--help lists them)" ;;
  esac
done

# 1. Integrity: every listed file matches, and nothing unlisted sits among the bundle's own files.
cd "$here"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
[ -f SHA256SUMS ] || die "SHA256SUMS is missing: this is not a complete bundle"
if ! sha256sum --check --strict --quiet SHA256SUMS >&2; then
  die "the bundle does not match its SHA256SUMS: refusing to install (files above)"
fi
cut -c67- SHA256SUMS | LC_ALL=C sort > "$scratch/listed"
unlisted=$(find image chart bin backup install.sh -type f 2>/dev/null | LC_ALL=C sort | LC_ALL=C comm -23 - "$scratch/listed")
[ -z "$unlisted" ] || die "files not in SHA256SUMS: $unlisted"
say "bundle gpu-paas $VERSION: every file matches SHA256SUMS (image $IMAGE_DIGEST)"
[ "$verify_only" = 0 ] || exit 0

# Only the bundle's own tools, with a helm home of their own (no repositories, plugins or caches of the host).
kubectl="$here/bin/kubectl"
helm="$here/bin/helm"
HELM_CONFIG_HOME="$scratch/helm/config" HELM_CACHE_HOME="$scratch/helm/cache" HELM_DATA_HOME="$scratch/helm/data"
export HELM_CONFIG_HOME HELM_CACHE_HOME HELM_DATA_HOME

# 2. The image.
if [ -n "$registry" ]; then
  repository=$registry
  target="$repository:$VERSION"
  if [ -n "$authfile" ] && [ ! -r "$authfile" ]; then die "cannot read --registry-authfile $authfile"; fi
  if command -v skopeo >/dev/null 2>&1; then
    policy=
    if [ ! -e /etc/containers/policy.json ] && [ ! -e "${HOME:-/nonexistent}/.config/containers/policy.json" ]; then
      # No signature policy on this host: accept the bundle's image, whose bytes SHA256SUMS just vouched for.
      printf '{"default": [{"type": "insecureAcceptAnything"}]}\n' > "$scratch/policy.json"
      policy="--policy $scratch/policy.json"
    fi
    set -- --preserve-digests
    [ -z "$authfile" ] || set -- "$@" --dest-authfile "$authfile"
    [ "$insecure" = 0 ] || set -- "$@" --dest-tls-verify=false
    # shellcheck disable=SC2086 # $policy is empty or two words without spaces inside
    skopeo $policy copy "$@" "oci:$here/image:$IMAGE_REF_NAME" "docker://$target" >&2
  elif command -v crane >/dev/null 2>&1; then
    set --
    [ "$insecure" = 0 ] || set -- --insecure
    if [ -n "$authfile" ]; then
      mkdir "$scratch/docker" && cp "$authfile" "$scratch/docker/config.json"
      DOCKER_CONFIG="$scratch/docker" crane push "$@" "$here/image" "$target" >&2
    else
      crane push "$@" "$here/image" "$target" >&2
    fi
  elif command -v regctl >/dev/null 2>&1; then
    # regctl keeps registries' credentials and TLS settings in its own configuration (regctl registry set/login).
    regctl image copy "ocidir://$here/image:$IMAGE_REF_NAME" "$target"
  else
    die "--registry needs skopeo, crane or regctl on PATH to push the image (none found)"
  fi
  say "pushed the image to $target ($IMAGE_DIGEST)"
else
  say "no --registry: the nodes must already hold the image. On each node with containerd, for example:"
  say "  tar -C image -cf gpu-paas.oci.tar . && ctr -n k8s.io images import --base-name ${repository:-<the chart's image.repository>} --digests gpu-paas.oci.tar"
fi

# 3. The namespace, enforced "restricted".
eval "set -- $kube_args"
kubectl_args=
for arg in "$@"; do
  case "$arg" in --kube-context) arg=--context ;; esac
  kubectl_args="$kubectl_args $(quote "$arg")"
done
if ! eval "\"\$kubectl\" $kubectl_args get namespace \"\$namespace\"" >/dev/null 2>&1; then
  eval "\"\$kubectl\" $kubectl_args create namespace \"\$namespace\"" >&2
fi
eval "\"\$kubectl\" $kubectl_args label --overwrite namespace \"\$namespace\" \
  pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest" >&2

# 4. The release.
set_image="--set image.digest=$IMAGE_DIGEST"
[ -z "$repository" ] || set_image="$set_image --set image.repository=$(quote "$repository")"
wait_args=
[ "$wait" = 0 ] || wait_args="--wait --timeout 10m"
eval "\"\$helm\" $kube_args upgrade --install \"\$release\" \"\$here/\$CHART\" --namespace \"\$namespace\" \
  $set_image $wait_args $helm_args"
say "gpu-paas $VERSION installed as release $release in namespace $namespace"
