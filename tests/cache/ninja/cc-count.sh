#!/bin/sh
# A C compiler that logs each compilation (not links, not cmake's probes).
case " $* " in
  *" -c "*CMakeScratch*|*" -c "*CMakeTmp*) ;;
  *" -c "*) echo "$*" >> "$(dirname "$0")/../compiles.log" ;;
esac
exec cc "$@"
