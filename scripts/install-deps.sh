#!/bin/sh
# Installs the Debian packages gpumux needs to build, test and run, when any is missing.
# groff-base and zsh: the install test renders the manual pages and tries the zsh completion.
set -eu
PKGS="build-essential cmake ninja-build pkg-config clang-format libsqlite3-dev sqlite3
libjansson-dev libfyaml-dev libmicrohttpd-dev libcurl4-openssl-dev libcriterion-dev
procps util-linux python3
groff-base zsh"
# `make fuzz` also needs clang and its libFuzzer runtime.
[ "${GM_FUZZ_DEPS:-0}" = 1 ] && PKGS="$PKGS clang libclang-rt-14-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "gpumux: missing packages:$missing" >&2
    echo "gpumux: run 'make deps' as root, or: apt-get install$missing" >&2
    exit 1
fi
echo "gpumux: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
