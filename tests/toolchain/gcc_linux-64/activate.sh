# Activation of cleave's gcc_linux-64 stand-in, after conda-forge's
# (ctng-compiler-activation): the compiler and binutils by their wrapper
# names, and conda-forge's default flags. In a build (CONDA_BUILD=1) the
# tools are in $BUILD_PREFIX and headers and libraries in $PREFIX;
# elsewhere both are the activated prefix.
if [ "${CONDA_BUILD:-0}" = "1" ]; then
  _cleave_host="${PREFIX}"
  _cleave_tools="${BUILD_PREFIX}/bin"
else
  _cleave_host="${CONDA_PREFIX}"
  _cleave_tools="${CONDA_PREFIX}/bin"
fi
export HOST=x86_64-conda-linux-gnu
export BUILD=x86_64-conda-linux-gnu
export CONDA_TOOLCHAIN_HOST=x86_64-conda-linux-gnu
export CONDA_TOOLCHAIN_BUILD=x86_64-conda-linux-gnu
export CC="${_cleave_tools}/x86_64-conda-linux-gnu-cc"
export GCC="${_cleave_tools}/x86_64-conda-linux-gnu-gcc"
export CPP="${_cleave_tools}/x86_64-conda-linux-gnu-cpp"
export CC_FOR_BUILD="${CC}"
export AR="${_cleave_tools}/x86_64-conda-linux-gnu-ar"
export AS="${_cleave_tools}/x86_64-conda-linux-gnu-as"
export LD="${_cleave_tools}/x86_64-conda-linux-gnu-ld"
export NM="${_cleave_tools}/x86_64-conda-linux-gnu-nm"
export RANLIB="${_cleave_tools}/x86_64-conda-linux-gnu-ranlib"
export STRIP="${_cleave_tools}/x86_64-conda-linux-gnu-strip"
export OBJCOPY="${_cleave_tools}/x86_64-conda-linux-gnu-objcopy"
export OBJDUMP="${_cleave_tools}/x86_64-conda-linux-gnu-objdump"
export READELF="${_cleave_tools}/x86_64-conda-linux-gnu-readelf"
export CFLAGS="-march=nocona -mtune=haswell -ftree-vectorize -fPIC -fstack-protector-strong -fno-plt -O2 -ffunction-sections -pipe -isystem ${_cleave_host}/include"
export CPPFLAGS="-DNDEBUG -D_FORTIFY_SOURCE=2 -O2 -isystem ${_cleave_host}/include"
export LDFLAGS="-Wl,-O2 -Wl,--sort-common -Wl,--as-needed -Wl,-z,relro -Wl,-z,now -Wl,--disable-new-dtags -Wl,--gc-sections -Wl,--allow-shlib-undefined -Wl,-rpath,${_cleave_host}/lib -Wl,-rpath-link,${_cleave_host}/lib -L${_cleave_host}/lib"
export CMAKE_ARGS="-DCMAKE_AR=${AR} -DCMAKE_RANLIB=${RANLIB} -DCMAKE_LINKER=${LD} -DCMAKE_STRIP=${STRIP} -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=${_cleave_host} -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_PREFIX_PATH=${_cleave_host}"
unset _cleave_host _cleave_tools
