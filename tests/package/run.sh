#!/usr/bin/env bash
# Builds the Debian package of an existing build directory ($IMKIT_BUILD_DIR) with
# `cpack -G DEB` into a scratch directory and checks it with dpkg-deb: files, conffile,
# control fields, maintainer scripts, units, and that the packaged gateway's default
# gateway.static_dir is where the package puts the Web SDK. Installs nothing.
# Exit 77 (skipped) when cpack or the dpkg tools are missing.
set -euo pipefail

build=${IMKIT_BUILD_DIR:?IMKIT_BUILD_DIR: a configured and built build directory}
build=$(cd "$build" && pwd)
for tool in cpack dpkg-deb dpkg-shlibdeps; do
    command -v "$tool" >/dev/null || { echo "skipped: $tool not installed"; exit 77; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
[ -n "$prefix" ] || { echo "FAIL: no CMAKE_INSTALL_PREFIX in $build/CMakeCache.txt" >&2; exit 1; }
if [ "$prefix" = /usr ]; then
    unitdir=/lib/systemd/system
else
    unitdir=$prefix/lib/systemd/system
    # The package's own prefix is /usr: cpack must refuse a build whose binaries were
    # configured for another one, then package this one under its own prefix.
    if (cd "$build" && cpack -G DEB -B "$tmp/refused") >"$tmp/refused.log" 2>&1; then
        fail "cpack packaged a build configured for $prefix under /usr"
    fi
fi

# --- Build ------------------------------------------------------------------------------
if ! (cd "$build" && cpack -G DEB -B "$tmp/out" -D CPACK_PACKAGING_INSTALL_PREFIX="$prefix") \
    >"$tmp/cpack.log" 2>&1; then
    cat "$tmp/cpack.log" >&2
    echo "FAIL: cpack -G DEB" >&2
    exit 1
fi
debs=("$tmp"/out/*.deb)
[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || { echo "FAIL: expected one .deb" >&2; exit 1; }
deb=${debs[0]}
echo "package: $(basename "$deb") (prefix $prefix)"
dpkg-deb -x "$deb" "$tmp/root"
dpkg-deb -e "$deb" "$tmp/control"
dpkg-deb -c "$deb" >"$tmp/contents"

# --- Control fields ---------------------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = imkit ] || fail "Package is '$(field Package)', not imkit"
for f in Version Architecture Maintainer Description Homepage Section Priority Depends; do
    [ -n "$(field "$f")" ] || fail "control field $f missing"
done
depends=$(field Depends)
for d in adduser libc6 libevent-core libhiredis libssl libjansson libmsgpackc; do
    case "$depends" in *"$d"*) ;; *) fail "Depends lacks $d: $depends" ;; esac
done
case "$(field Recommends)" in *redis-server*) ;; *) fail "Recommends lacks redis-server" ;; esac

# --- Files ------------------------------------------------------------------------------
must_exist() {
    [ -f "$tmp/root$1" ] || fail "missing $1"
}
must_exec() {
    [ -x "$tmp/root$1" ] && [ -f "$tmp/root$1" ] || fail "missing or not executable: $1"
}
must_exec "$prefix/bin/imkit-gateway"
must_exec "$prefix/bin/imkit-worker"
for unit in imkit-gateway.service imkit-worker@.service imkit.target; do
    must_exist "$unitdir/$unit"
done
sdk=$prefix/share/imkit/web
for f in imkit.js imkit.mjs imkit.d.ts demo/index.html demo/app.js demo/style.css; do
    must_exist "$sdk/$f"
done
[ ! -e "$tmp/root$sdk/test" ] || fail "the SDK's tests are packaged"
[ ! -e "$tmp/root$sdk/node_modules" ] || fail "node_modules is packaged"
must_exist "$prefix/share/doc/imkit/examples/redis.conf"

# Every file lies under the prefix, the configuration folder or the unit folder.
conffiles=$(cat "$tmp/control/conffiles" 2>/dev/null || true)
conf=$(printf '%s\n' "$conffiles" | grep '/imkit/imkit\.conf$' || true)
[ -n "$conf" ] || fail "conffiles does not list imkit.conf: '$conffiles'"
must_exist "$conf"
grep -q -- "-rw-r----- root/root .* \.$conf\$" "$tmp/contents" ||
    fail "$conf is not mode 0640 in the package"
confdir=$(dirname "$conf")
while read -r path; do
    case "$path" in
    "$prefix"/* | "$confdir"/* | "$unitdir"/*) ;;
    *) fail "unexpected file $path" ;;
    esac
done < <(cd "$tmp/root" && find . -type f | sed 's/^\.//')

# --- Maintainer scripts -----------------------------------------------------------------
for s in postinst prerm postrm; do
    [ -x "$tmp/control/$s" ] || { fail "maintainer script $s missing"; continue; }
    sh -n "$tmp/control/$s" || fail "$s: syntax error"
done
grep -q 'adduser --system --group' "$tmp/control/postinst" || fail "postinst creates no user"
grep -q 'daemon-reload' "$tmp/control/postinst" || fail "postinst does not reload systemd"
grep -q 'systemctl stop' "$tmp/control/prerm" || fail "prerm does not stop the units"

# --- Units: what they run and read is in the package -------------------------------------
for unit in imkit-gateway.service imkit-worker@.service; do
    file=$tmp/root$unitdir/$unit
    [ -f "$file" ] || continue
    exec_start=$(sed -n 's/^ExecStart=//p' "$file")
    bin=${exec_start%% *}
    must_exec "$bin"
    case "$exec_start" in
    *"--config $conf"*) ;;
    *) fail "$unit: ExecStart '$exec_start' does not read $conf" ;;
    esac
    grep -q '^User=imkit$' "$file" || fail "$unit: not run as imkit"
    grep -q '^Restart=on-failure$' "$file" || fail "$unit: no Restart=on-failure"
    grep -q '^TimeoutStopSec=' "$file" || fail "$unit: no TimeoutStopSec"
done

# --- The packaged binaries: version, and where the gateway looks for the Web SDK ---------
gateway=$tmp/root$prefix/bin/imkit-gateway
if [ -x "$gateway" ]; then
    version=$("$gateway" --version | awk '{print $2}')
    [ "$version" = "$(field Version)" ] ||
        fail "imkit-gateway --version says $version, the package $(field Version)"
    static_dir=$("$gateway" --help | awk '/^  gateway.static_dir /{getline; print}' |
        sed -n 's/.*default: \(.*\); environment:.*/\1/p')
    [ "$static_dir" = "$sdk" ] ||
        fail "gateway.static_dir defaults to '$static_dir', the SDK is packaged in $sdk"
    [ -f "$tmp/root$static_dir/imkit.js" ] || fail "no imkit.js under $static_dir"
fi

if [ "$failures" -gt 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "ok: $(wc -l <"$tmp/contents") entries checked"
