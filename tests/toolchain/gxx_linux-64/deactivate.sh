# Deactivation of cleave's gxx_linux-64 stand-in: what activate.sh exported.
unset CXX GXX CXX_FOR_BUILD CXXFLAGS
