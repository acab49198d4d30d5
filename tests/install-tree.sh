#!/bin/sh
# install-tree.sh — installs a build into a scratch DESTDIR and checks the
# tree a package would ship: binaries, plugins, the plugin header and its
# pkg-config file, configuration, sample knowledge, systemd units, sysusers,
# man pages; that nothing lands outside the prefix (and its sysconfdir), that
# no installed text file points back into the source or build tree, that an
# out-of-tree plugin compiles against the installed header, that a
# `moactl plugin new` skeleton builds with only the installed SDK (headers,
# helpers library, pkg-config file) and the installed moad loads it, that
# the installed configuration validates, and that the installed daemon and
# client work together with the installed plugins and knowledge. Last,
# `cmake --install --prefix P` (a staging prefix) puts every file under P,
# except a directory configured outside the prefix (/etc/moad for /usr).
#
# Usage: install-tree.sh BUILD_DIR
# The expected locations are the build's configured ones (CMakeCache.txt):
# moad compiles them in. For CMAKE_INSTALL_PREFIX=/usr the FHS paths
# (/usr/sbin/moad, /etc/moad, /usr/lib/systemd/system, ...) are checked
# literally as well.
set -eu

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
build=$(cd "$1" && pwd)
cache=$build/CMakeCache.txt
[ -f "$cache" ] || { echo "$build is not a CMake build directory" >&2; exit 2; }

tmp=$(mktemp -d)
pid=
cleanup() {
        [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$cache" | head -n 1; }
# GNUInstallDirs values are relative to the prefix unless absolute.
dir_of() {
        v=$(cache_get "$1")
        [ -n "$v" ] || v=$2
        case $v in /*) echo "$v" ;; *) echo "$prefix/$v" ;; esac
}

src=$(cache_get CMAKE_HOME_DIRECTORY)
prefix=$(cache_get CMAKE_INSTALL_PREFIX)
sbindir=$(dir_of CMAKE_INSTALL_SBINDIR sbin)
bindir=$(dir_of CMAKE_INSTALL_BINDIR bin)
libdir=$(dir_of CMAKE_INSTALL_LIBDIR lib)
includedir=$(dir_of CMAKE_INSTALL_INCLUDEDIR include)
mandir=$(dir_of CMAKE_INSTALL_MANDIR share/man)
confdir=$(cache_get MOAD_CONF_DIR)
datadir=$(cache_get MOAD_DATA_DIR)
plugindir=$(cache_get MOAD_PLUGIN_DIR)
unitdir=$(cache_get MOAD_SYSTEMD_UNIT_DIR)
sysusersdir=$(cache_get MOAD_SYSUSERS_DIR)
agents="legal medical finance code general"

echo "build $build, prefix $prefix, DESTDIR $tmp"
if ! DESTDIR=$tmp/root cmake --install "$build" >"$tmp/install.log" 2>&1; then
        cat "$tmp/install.log"
        echo "FAIL: cmake --install"
        exit 1
fi
root=$tmp/root

# ---- the files ----
need() { # need TEST PATH WHAT
        if [ "$1" "$root$2" ]; then ok "$3: $2"; else fail "$3 missing: $2"; fi
}
need -x "$sbindir/moad" "daemon"
need -x "$bindir/moactl" "client"
for p in $agents; do
        need -f "$plugindir/$p.so" "plugin"
done
if [ -e "$root$plugindir/example.so" ]; then fail "the authoring example plugin is installed"; fi
need -f "$includedir/moa/plugin.h" "plugin header"
need -f "$includedir/moa/plugin-util.h" "plugin helpers header"
need -f "$libdir/libmoa-plugin-util.a" "plugin helpers library"
need -f "$libdir/pkgconfig/moa-plugin.pc" "pkg-config file"
need -f "$confdir/moad.yaml" "configuration"
for a in $agents; do
        need -f "$confdir/agents.d/$a.yaml" "agent file"
        n=$(find "$root$datadir/knowledge/$a" -name '*.md' -size +0 2>/dev/null | wc -l)
        if [ "$n" -gt 0 ]; then ok "knowledge of $a: $n documents"; else fail "no sample knowledge for $a"; fi
done
need -f "$unitdir/moad.service" "unit"
need -f "$unitdir/moad.socket" "unit"
need -f "$sysusersdir/moad.conf" "sysusers.d"
need -s "$mandir/man8/moad.8" "man page"
need -s "$mandir/man1/moactl.1" "man page"
need -s "$mandir/man5/moad.yaml.5" "man page"

if [ "$prefix" = /usr ]; then
        for f in /usr/sbin/moad /usr/bin/moactl /usr/include/moa/plugin.h /etc/moad/moad.yaml \
                 /usr/lib/systemd/system/moad.service /usr/lib/systemd/system/moad.socket \
                 /usr/lib/sysusers.d/moad.conf /usr/share/man/man8/moad.8; do
                need -f "$f" "FHS path"
        done
        n=$(find "$root/usr/lib" -path '*/moad/plugins/*.so' | wc -l)
        [ "$n" -eq 5 ] && ok "5 plugins under /usr/lib/.../moad/plugins" || fail "$n plugins under /usr/lib"
        [ -d "$root/usr/share/moad/knowledge" ] && ok "knowledge in /usr/share/moad" || fail "no /usr/share/moad/knowledge"
fi

# ---- nothing outside the prefix (the configuration may be in /etc) ----
outside=$(cd "$root" && find . -type f | sed 's#^\.##' | while read -r f; do
        case $f in "$prefix"/* | "$confdir"/*) ;; *) echo "$f" ;; esac
done)
[ -z "$outside" ] && ok "every file under $prefix or $confdir" || fail "installed outside the prefix: $outside"

# ---- installed text files do not point into the source or build tree (compiled
# objects, .so and .a, carry debug paths) ----
leaks=$(cd "$root" && find . -type f ! -name '*.so' ! -name '*.a' ! -path "*$sbindir/*" ! -path "*$bindir/*" \
        -exec grep -l -e "$src" -e "$build" {} + 2>/dev/null || true)
[ -z "$leaks" ] && ok "no installed text file refers to $src or $build" || fail "refer to the source/build tree: $leaks"

# The unit starts the installed daemon with the installed configuration.
if grep -q "^ExecStart=$sbindir/moad --config $confdir/moad.yaml\$" "$root$unitdir/moad.service"; then
        ok "moad.service runs $sbindir/moad --config $confdir/moad.yaml"
else
        fail "moad.service ExecStart: $(grep ^ExecStart= "$root$unitdir/moad.service")"
fi
grep -q '^u *moad ' "$root$sysusersdir/moad.conf" && ok "sysusers declares moad" || fail "sysusers has no user moad"

# ---- pkg-config and an out-of-tree plugin against the installed header ----
if command -v pkg-config >/dev/null 2>&1; then
        # The .pc carries the real prefix; the sysroot maps it into DESTDIR.
        cflags=$(PKG_CONFIG_PATH="$root$libdir/pkgconfig" PKG_CONFIG_LIBDIR=/nonexistent \
                PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 pkg-config --cflags moa-plugin) ||
                fail "pkg-config --cflags moa-plugin"
        # pkg-config may relocate the prefix (".../lib/pkgconfig/../../include"): compare real paths.
        set -- $cflags
        if [ $# -eq 1 ] && [ "${1#-I}" != "$1" ] && [ "$(readlink -f "${1#-I}")" = "$(readlink -f "$root$includedir")" ]; then
                ok "pkg-config --cflags moa-plugin: $1 (= $includedir in DESTDIR)"
        else
                fail "pkg-config --cflags gave '$cflags', want -I$includedir in $root"
        fi
        libs=$(PKG_CONFIG_PATH="$root$libdir/pkgconfig" PKG_CONFIG_LIBDIR=/nonexistent \
                PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_ALLOW_SYSTEM_LIBS=1 pkg-config --libs moa-plugin) ||
                fail "pkg-config --libs moa-plugin"
        set -- $libs
        if [ $# -eq 3 ] && [ "$(readlink -f "${1#-L}")" = "$(readlink -f "$root$libdir")" ] &&
                [ "$2" = -lmoa-plugin-util ] && [ "$3" = -lm ]; then
                ok "pkg-config --libs moa-plugin: $libs"
        else
                fail "pkg-config --libs gave '$libs', want -L$libdir -lmoa-plugin-util -lm in $root"
        fi
        pdir=$(PKG_CONFIG_PATH="$root$libdir/pkgconfig" PKG_CONFIG_LIBDIR=/nonexistent \
                pkg-config --variable=plugindir moa-plugin)
        [ "$pdir" = "$plugindir" ] && ok "pkg-config plugindir $pdir" || fail "pkg-config plugindir '$pdir'"
        cc=${CC:-cc}
        if command -v "$cc" >/dev/null 2>&1; then
                if $cc -shared -fPIC -Wall -Werror $cflags "$src/plugins/example/example.c" -o "$tmp/example.so" \
                        2>"$tmp/cc.log"; then
                        ok "example plugin compiles against the installed header"
                else
                        cat "$tmp/cc.log"
                        fail "example plugin does not compile against the installed header"
                fi
        fi
        # a skeleton from the installed moactl, built by its Makefile with
        # only the installed SDK, checked and loaded by the installed moad
        if command -v make >/dev/null 2>&1 && command -v "$cc" >/dev/null 2>&1; then
                if "$root$bindir/moactl" plugin new skel --dir "$tmp" >"$tmp/skel.log" 2>&1 &&
                        PKG_CONFIG_PATH="$root$libdir/pkgconfig" PKG_CONFIG_LIBDIR=/nonexistent \
                                make -C "$tmp/skel" CC="$cc" CFLAGS="-O2 -Wall -Wextra -Werror" \
                                >>"$tmp/skel.log" 2>&1; then
                        ok "moactl plugin new skeleton builds with the installed SDK"
                else
                        cat "$tmp/skel.log"
                        fail "the skeleton does not build with the installed SDK"
                fi
                if grep -q -e "$src" -e "$build" "$tmp/skel.log"; then
                        fail "the skeleton build used the source or build tree: $(grep -e "$src" -e "$build" "$tmp/skel.log")"
                fi
                if out=$("$root$sbindir/moad" --check-plugin "$tmp/skel/skel.so" 2>&1) &&
                        echo "$out" | grep -q "plugin skel 0.1.0 (ABI .*): descriptor OK"; then
                        ok "the installed moad loads the skeleton: $(echo "$out" | head -n 1)"
                else
                        fail "the installed moad does not load the skeleton: $out"
                fi
        else
                echo "make or $cc not installed: SKIPPING the skeleton build with the installed SDK"
        fi
else
        echo "pkg-config not installed: pkg-config checks skipped"
fi

# The agent files name $datadir (knowledge, example questions): for the runs
# below they are copied with the DESTDIR in front, the one change a real
# install does not need.
mkdir -p "$tmp/agents.d"
for a in $agents; do
        sed -e "s#^\([[:space:]]*-[[:space:]]*\)$datadir/#\1$root$datadir/#" \
                -e "s#^\(examples_file:[[:space:]]*\)$datadir/#\1$root$datadir/#" \
                "$root$confdir/agents.d/$a.yaml" >"$tmp/agents.d/$a.yaml"
done

# ---- the installed configuration validates ----
# moad's sanitizer runtime must not look for a suppression file etc. here;
# the installed binary is exactly the built one.
if out=$("$root$sbindir/moad" --check-config --config "$root$confdir/moad.yaml" \
        --agents-dir "$tmp/agents.d" 2>&1); then
        ok "installed configuration: $out"
else
        fail "installed configuration invalid: $out"
fi
case $out in *"5 agents"*) ;; *) fail "installed configuration does not have the 5 shipped agents" ;; esac

# Every knowledge path of an installed agent exists in the installed tree.
for a in $agents; do
        for k in $(sed -n 's/^[[:space:]]*-[[:space:]]*\(\/.*\)$/\1/p' "$root$confdir/agents.d/$a.yaml"); do
                case $k in
                "$datadir"/*) [ -d "$root$k" ] && ok "$a knowledge $k" || fail "$a knowledge $k not installed" ;;
                *) fail "$a knowledge path $k is not under $datadir" ;;
                esac
        done
        if grep -q '^[[:space:]]*-[[:space:]]*knowledge/' "$root$confdir/agents.d/$a.yaml"; then
                fail "$a.yaml still has a relative knowledge path"
        fi
        ex=$(sed -n 's/^examples_file:[[:space:]]*//p' "$root$confdir/agents.d/$a.yaml")
        case $ex in
        "$datadir"/examples/*) [ -s "$root$ex" ] && ok "$a examples $ex" || fail "$a examples $ex not installed" ;;
        *) fail "$a examples path '$ex' is not under $datadir/examples" ;;
        esac
done

# ---- the installed daemon and client, with the installed plugins and knowledge ----
sock=$tmp/moad.sock
env -u LISTEN_FDS -u LISTEN_PID -u NOTIFY_SOCKET -u OPENAI_BASE_URL -u OPENAI_API_KEY \
        MOAD_PLUGIN_DIR="$root$plugindir" "$root$sbindir/moad" --config "$root$confdir/moad.yaml" \
        --agents-dir "$tmp/agents.d" --socket "$sock" --state-dir "$tmp/state" >"$tmp/moad.log" 2>&1 &
pid=$!
i=0
until "$root$bindir/moactl" --socket "$sock" health >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 600 ] || ! kill -0 "$pid" 2>/dev/null; then
                cat "$tmp/moad.log"
                fail "the installed moad did not become ready"
                break
        fi
        sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
        for a in $agents; do
                grep -q "agent $a: seeded knowledge base .* with [1-9][0-9]* document" "$tmp/moad.log" &&
                        grep -q "agent $a: loaded plugin $a .* from $root$plugindir/$a.so" "$tmp/moad.log" &&
                        ok "installed agent $a: plugin and knowledge loaded" || fail "installed agent $a not loaded"
        done
        models=$("$root$bindir/moactl" --socket "$sock" models 2>&1) || fail "moactl models: $models"
        for m in moa moa-lite $agents; do
                if ! echo "$models" | grep -qw -- "$m"; then fail "moactl models does not list $m"; fi
        done
        answer=$("$root$bindir/moactl" --socket "$sock" ask "How does compound interest work?" 2>&1) ||
                fail "moactl ask: $answer"
        case $answer in
        *[Ii]nterest*) ok "the installed moactl asked the installed moad and got an answer" ;;
        *) fail "unexpected answer: $answer" ;;
        esac
        kill -TERM "$pid"
        st=0
        wait "$pid" || st=$?
        pid=
        [ $st -eq 0 ] && ok "installed moad stopped cleanly" || fail "installed moad exited $st"
fi
if grep -q -e "ERROR: AddressSanitizer" -e "runtime error:" -e LeakSanitizer "$tmp/moad.log"; then
        cat "$tmp/moad.log"
        fail "sanitizer report from the installed moad"
fi

# ---- cmake --install --prefix P: every file under P (staged in a DESTDIR,
# so a directory configured outside the prefix cannot touch the machine) ----
staged=/opt/moad-staged-prefix
if DESTDIR=$tmp/stage cmake --install "$build" --prefix "$staged" >"$tmp/install-prefix.log" 2>&1; then
        outside=$(cd "$tmp/stage" && find . -type f | sed 's#^\.##' | while read -r f; do
                case $f in "$staged"/*) ;; "$confdir"/*) case $confdir in "$prefix"/*) echo "$f" ;; esac ;; *) echo "$f" ;; esac
        done)
        n=$(find "$tmp/stage$staged" -type f | wc -l)
        [ -z "$outside" ] && ok "cmake --install --prefix $staged: $n files, every one under it" ||
                fail "cmake --install --prefix put files outside the prefix: $outside"
        for f in sbin/moad bin/moactl include/moa/plugin-util.h; do
                [ -f "$tmp/stage$staged/$f" ] || fail "--prefix install has no $staged/$f"
        done
        case $confdir in
        "$prefix"/*) [ -f "$tmp/stage$staged/${confdir#"$prefix"/}/moad.yaml" ] && ok "configuration under the staged prefix" ||
                fail "no configuration under $staged" ;;
        *) echo "note: $confdir is outside the prefix $prefix: it is installed there, not under $staged" ;;
        esac
else
        cat "$tmp/install-prefix.log"
        fail "cmake --install --prefix $staged"
fi

if [ $fails -ne 0 ]; then
        echo "$fails check(s) failed"
        exit 1
fi
echo "install tree: all checks passed"
