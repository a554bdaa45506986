# A virtual environment of the machine's python3 as a conda prefix: the
# interpreter is linked, pyvenv.cfg beside bin/ makes sys.prefix this
# prefix and its site-packages lib/python3.11/site-packages, and lets the
# machine's own site-packages (pip, setuptools, wheel) be imported, so that
# `$PYTHON -m pip install . --no-build-isolation` works offline.
set -euo pipefail
real=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
"$real" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "the python stand-in needs the machine python3 to be 3.11, it is " + sys.version)'
mkdir -p "$PREFIX/bin" "$PREFIX/lib/python3.11/site-packages"
ln -s "$real" "$PREFIX/bin/python3.11"
ln -s python3.11 "$PREFIX/bin/python3"
ln -s python3.11 "$PREFIX/bin/python"
cat > "$PREFIX/pyvenv.cfg" <<CFG
home = $(dirname "$real")
include-system-site-packages = true
version = $("$real" -c 'import platform; print(platform.python_version())')
CFG
# An installed package lists no empty directory: this file keeps
# site-packages there for the build's SP_DIR and for pip.
echo "site-packages of cleave's python stand-in" > "$PREFIX/lib/python3.11/site-packages/README.cleave-standin"
