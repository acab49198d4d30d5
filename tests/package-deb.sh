#!/bin/sh
# package-deb.sh BUILD_DIR — build the Debian package with CPack from the
# build tree and check it: control fields, runtime dependencies, conffiles
# for every file under the configuration directory, the postinst, and the
# binaries, plugins, units, man pages and sample knowledge it must carry.
set -eu
build=$1
command -v dpkg-deb >/dev/null || { echo "dpkg-deb missing: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

(cd "$build" && cpack -G DEB -B "$tmp" >"$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log"; exit 1; }
deb=$(ls "$tmp"/moad_*.deb)
info=$(dpkg-deb -I "$deb")
files=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
conffiles=$(dpkg-deb -f "$deb" Package >/dev/null && dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
fail=0
need() { printf '%s\n' "$files" | grep -q -- "$1" || { echo "missing in package: $1"; fail=1; }; }

printf '%s\n' "$info" | grep -q '^ Package: moad$' || { echo "bad Package"; fail=1; }
printf '%s\n' "$info" | grep -q '^ Depends: .*libmicrohttpd12.*libsqlite3-0' || { echo "bad Depends"; fail=1; }
printf '%s\n' "$info" | grep -q ' postinst' || { echo "no postinst"; fail=1; }
for f in /sbin/moad /bin/moactl /moad/plugins/legal.so /moad/plugins/general.so /include/moa/plugin.h \
         /pkgconfig/moa-plugin.pc /systemd/system/moad.service /systemd/system/moad.socket /sysusers.d/moad.conf \
         /man8/moad.8 /man1/moactl.1 /man5/moad.yaml.5 /moad/knowledge/legal/ /moad.yaml /agents.d/legal.yaml; do
        need "$f"
done
# every configuration file is a conffile (local edits survive upgrades)
for f in $(printf '%s\n' "$files" | grep -E '/moad/(moad\.yaml|agents\.d/.+\.yaml)$'); do
        printf '%s\n' "$conffiles" | grep -qx -- "$f" || { echo "not a conffile: $f"; fail=1; }
done
[ "$fail" = 0 ] && echo "package ok: $(basename "$deb"), $(printf '%s\n' "$files" | grep -c -v '/$') files"
exit $fail
