echo run >> "$RECIPE_DIR/../runs.log"
mkdir -p "$PREFIX/lib/empty" "$PREFIX/include"
cp a.txt "$PREFIX/lib/liba.txt"
echo "#define A 1" > "$PREFIX/include/a.h"
echo "$PREFIX" > "$PREFIX/lib/prefix.txt"
ln -s liba.txt "$PREFIX/lib/liba-rel.txt"
ln -s "$PREFIX/lib/liba.txt" "$PREFIX/lib/liba-abs.txt"
echo "built from $(cat a.txt)" > built-in-work.txt
