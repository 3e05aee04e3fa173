#!/usr/bin/env bash
# Builds a base image for functions: a directory tree unpacked from Debian packages, which the
# engine mounts read-only as the guest's `/` (FunctionConfig::with_base_image,
# `examples/invoke --base-image DIR`). See docs/base-image.md.
#
#   functions/base-image/build.sh DIR [--python] [--tools] [PACKAGE...]
#
# DIR gets glibc (the dynamic linker, libc, libm, libdl...), libgcc_s (Rust's and C++'s
# unwinder), dash as /bin/sh, with --python Debian's python3 (3.11: the interpreter, its
# standard library and the libraries its modules load), with --tools what a shell
# bootstrap calls (bash, coreutils, grep, sed, awk, find, xargs, curl and the libraries they
# load: AWS's
# custom-runtime tutorial runs with them), any further PACKAGEs named, and
# /etc/ld.so.cache. The packages
# are fetched with `apt-get download` (not installed: nothing on the host changes) and
# unpacked with `dpkg-deb -x`; their maintainer scripts do not run. Dependencies are not
# followed: name every package the image needs. An existing DIR is replaced only once the
# new tree is complete.
set -euo pipefail

if [ "$#" -lt 1 ]; then
    echo "usage: $0 DIR [--python] [--tools] [PACKAGE...]" >&2
    exit 2
fi
out=$1
shift
packages=(libc6 libgcc-s1 dash)
while [ "$#" -gt 0 ]; do
    case "$1" in
    --python)
        packages+=(python3-minimal python3.11-minimal libpython3.11-minimal
            libpython3.11-stdlib libexpat1 zlib1g libssl3 libffi8 libbz2-1.0 liblzma5
            media-types)
        ;;
    --tools)
        # Found with `apt-cache depends --recurse` (pre-depends of the shell and core
        # utilities included, the packaging tools left out).
        packages+=(bash coreutils grep sed mawk findutils curl libtinfo6 libacl1 libattr1 libselinux1
            libpcre2-8-0 libgmp10 libmd0 libcurl4 libbrotli1 libgssapi-krb5-2 libkrb5-3
            libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1 libidn2-0
            libunistring2 libldap-2.5-0 libsasl2-2 libsasl2-modules-db libdb5.3
            libgnutls30 libp11-kit0 libffi8 libtasn1-6 libnettle8 libhogweed6
            libnghttp2-14 libpsl5 librtmp1 libssh2-1 libssl3 libzstd1 zlib1g)
        ;;
    *) break ;;
    esac
    shift
done
packages+=("$@")
# A package named twice is downloaded once.
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | awk '!seen[$0]++')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
download() { (cd "$work/debs" && apt-get download -qq "${packages[@]}"); }
mkdir -p "$work/debs"
if ! download 2>/dev/null; then
    # A fresh machine may not have read the package lists yet.
    apt-get update -qq
    if ! download; then
        echo "$0: apt-get download failed for some of: ${packages[*]} (apt's error is above;" \
            "a version can be pinned as PACKAGE=VERSION)" >&2
        exit 1
    fi
fi

tree="$work/root"
mkdir -p "$tree"
for deb in "$work"/debs/*.deb; do
    dpkg-deb -x "$deb" "$tree"
done
# What dash's maintainer script would do: /bin/sh is dash.
mkdir -p "$tree/bin"
ln -sfn dash "$tree/bin/sh"
# And what update-alternatives would: awk is mawk.
if [ -e "$tree/usr/bin/mawk" ] && [ ! -e "$tree/usr/bin/awk" ]; then
    ln -s mawk "$tree/usr/bin/awk"
fi
# The linker's cache of the image's own libraries (ld.so reads /etc/ld.so.cache first).
ldconfig -r "$tree"
mkdir -p "$tree/tmp" "$tree/var/task" "$tree/opt"

mkdir -p "$(dirname "$out")"
rm -rf "$out.old"
[ -e "$out" ] && mv "$out" "$out.old"
mv "$tree" "$out"
rm -rf "$out.old"
printf '%s\n' "${packages[@]}" > "$out/.packages"
echo "base image in $out: ${packages[*]} ($(du -sh "$out" | cut -f1))"
