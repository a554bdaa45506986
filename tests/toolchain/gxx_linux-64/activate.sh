# Activation of cleave's gxx_linux-64 stand-in, after conda-forge's: the
# C++ compiler by its wrapper name and conda-forge's default C++ flags
# (gcc_linux-64, a dependency, sets the rest).
if [ "${CONDA_BUILD:-0}" = "1" ]; then
  _cleave_host="${PREFIX}"
  _cleave_tools="${BUILD_PREFIX}/bin"
else
  _cleave_host="${CONDA_PREFIX}"
  _cleave_tools="${CONDA_PREFIX}/bin"
fi
export CXX="${_cleave_tools}/x86_64-conda-linux-gnu-c++"
export GXX="${_cleave_tools}/x86_64-conda-linux-gnu-g++"
export CXX_FOR_BUILD="${CXX}"
export CXXFLAGS="-fvisibility-inlines-hidden -fmessage-length=0 -march=nocona -mtune=haswell -ftree-vectorize -fPIC -fstack-protector-strong -fno-plt -O2 -ffunction-sections -pipe -isystem ${_cleave_host}/include"
unset _cleave_host _cleave_tools
