#!/bin/sh
# Install what the pentaflow lab and the L4 scheduler tests need, idempotently.
#
# Only missing packages are installed, and `apt-get update` runs at most once, so calling
# this from every CI run costs nothing when the image already has them.
#   nftables  - `nft`: the netdev ingress drop that keeps the scheduler's own stack off VIP frames
#   iproute2  - `ip`: namespaces, veth, bridge, addresses, routes
#   procps    - `sysctl`
#   python3   - the throw-away HTTP servers of the lab's web namespaces
#   curl      - manual checks from a client namespace
set -eu

want="nftables iproute2 procps python3 curl"
missing=""
for pkg in $want; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

# python3 may come from elsewhere (pyenv, a base image); do not reinstall it from Debian then.
case "$missing" in
    *python3*) if command -v python3 >/dev/null 2>&1; then missing=$(echo "$missing" | sed 's/ python3//'); fi ;;
esac

if [ -z "$(echo "$missing" | tr -d ' ')" ]; then
    echo "install-lab-deps: all present ($want)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-lab-deps: need root to install:$missing" >&2
    exit 1
fi

echo "install-lab-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y --no-install-recommends $missing
