# Writes conda-forge's compiler wrapper names into $PREFIX/bin, each running
# a tool of the machine. Sourced by the gcc_linux-64 and gxx_linux-64
# recipes; arguments are NAME=TOOL pairs (`cc=gcc` writes
# x86_64-conda-linux-gnu-cc, which runs the machine's gcc).
#
# The tool is found now and written in by its absolute path, so a wrapper
# never finds itself or another wrapper on PATH. The search skips cleave's
# masquerade dir (compile-bin), which is first on PATH during this build:
# its links are gone once the build ends. Each call is logged to
# share/cleave-toolchain/calls.log of the prefix the wrapper is installed
# in, so a build (and a test) can tell that the conda compiler ran.
set -euo pipefail
triplet=x86_64-conda-linux-gnu
find_tool() {
  local IFS=: dir
  for dir in $PATH; do
    [ "${dir##*/}" = compile-bin ] && continue
    [ -x "$dir/$1" ] && { echo "$dir/$1"; return 0; }
  done
  return 1
}
mkdir -p "$PREFIX/bin"
for pair in "$@"; do
  name=${pair%%=*}
  tool=$(find_tool "${pair#*=}") || { echo "this machine has no ${pair#*=}" >&2; exit 1; }
  wrapper="$PREFIX/bin/$triplet-$name"
  cat > "$wrapper" <<WRAPPER
#!/bin/sh
# cleave's toolchain stand-in: conda-forge's $triplet-$name, running $tool.
log="\$(dirname "\$0")/../share/cleave-toolchain/calls.log"
mkdir -p "\$(dirname "\$log")" && echo "$triplet-$name \$*" >> "\$log"
exec $tool "\$@"
WRAPPER
  chmod 755 "$wrapper"
done
