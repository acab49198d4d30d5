#!/bin/sh
# Build the example plugin out of tree with exactly the documented command
# line, using the build tree's moa-plugin.pc, then load it with the host;
# then the same for a skeleton from `moactl plugin new` built with its own
# Makefile (which links the helpers library through pkg-config --libs).
# usage: plugin-out-of-tree.sh <dir with moa-plugin.pc> <example.c> <plugin-load> <moactl>
set -eu
pcdir=$1 src=$2 loader=$3 moactl=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
cp "$src" "$tmp/my.c"
cd "$tmp"
export PKG_CONFIG_PATH="$pcdir"
echo "+ cc -shared -fPIC \$(pkg-config --cflags moa-plugin) my.c -o my.so \$(pkg-config --libs moa-plugin)"
echo "  [cflags: $(pkg-config --cflags moa-plugin)] [libs: $(pkg-config --libs moa-plugin)]"
cc -shared -fPIC $(pkg-config --cflags moa-plugin) my.c -o my.so $(pkg-config --libs moa-plugin)
"$loader" "$tmp/my.so" "what is a good recipe to bake bread dough in the oven?" cooking

case " $(pkg-config --libs moa-plugin) " in
*" -lm "*) echo "ok: pkg-config --libs names libm" ;;
*) echo "FAIL: pkg-config --libs moa-plugin has no -lm"; exit 1 ;;
esac

# the plugin directory a build-tree daemon loads from
[ "$(pkg-config --variable=plugindir moa-plugin)" = "$pcdir" ] ||
        { echo "FAIL: build-tree plugindir is $(pkg-config --variable=plugindir moa-plugin), not $pcdir"; exit 1; }

"$moactl" plugin new skel --dir "$tmp"
make -C "$tmp/skel" CFLAGS="-O2 -Wall -Wextra -Werror"
# only the entry symbol is exported: the helpers stay inside the plugin
exported=$(nm -D --defined-only "$tmp/skel/skel.so" | awk '$2 == "T" { print $3 }')
[ "$exported" = moa_plugin_entry ] || { echo "FAIL: skel.so exports: $exported"; exit 1; }
"$loader" "$tmp/skel/skel.so" "what does the skel expert say?" skel
