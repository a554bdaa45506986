# The staging build of the seed's cache-only package: a file in $PREFIX
# and one in the work dir, which both inheriting packages start from.
mkdir -p "$PREFIX/share/test-split"
echo "built once by test-split" > "$PREFIX/share/test-split/built.txt"
echo "left in the work dir" > state.txt
