#!/bin/sh
# Build the example plugin out of tree with exactly the documented command
# line, using the build tree's moa-plugin.pc, then load it with the host.
# usage: plugin-out-of-tree.sh <dir with moa-plugin.pc> <example.c> <plugin-load>
set -eu
pcdir=$1 src=$2 loader=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
cp "$src" "$tmp/my.c"
cd "$tmp"
export PKG_CONFIG_PATH="$pcdir"
echo "+ cc -shared -fPIC \$(pkg-config --cflags moa-plugin) my.c -o my.so   [cflags: $(pkg-config --cflags moa-plugin)]"
cc -shared -fPIC $(pkg-config --cflags moa-plugin) my.c -o my.so
"$loader" "$tmp/my.so" "what is a good recipe to bake bread dough in the oven?" cooking
