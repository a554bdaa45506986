#!/bin/sh
# A cleave cache helper (protocol 1) that keeps entries on any HTTP server
# that takes PUT and serves GET (a WebDAV share, an object store's HTTP
# endpoint, a static file server with uploads), using tar and curl: cleave
# knows nothing of the server, the helper knows nothing of cleave's store.
#
#   CLEAVE_HELPER_URL=https://cache.example/cleave cleave build --cache-helper curl-helper.sh ...
#
# `lookup` downloads KEY.tar into a local directory and hands it over (cleave
# copies it into its store); `store` packs the portable entry and uploads it.
# curl's own options (netrc, certificates) come from ~/.curlrc or
# CLEAVE_HELPER_CURL_OPTS. See docs/cache-helpers.md.
set -eu

verb=${1:-}
request=$(cat)
url=${CLEAVE_HELPER_URL:?CLEAVE_HELPER_URL is not set}
key=$(printf '%s' "$request" | grep -o '"key":"[0-9a-f]\{64\}"' | head -n 1 | cut -d '"' -f 4)
[ -n "$key" ] || { echo "no key in the request" >&2; exit 1; }
# shellcheck disable=SC2086
fetch() { curl --silent --show-error --fail --max-time 30 ${CLEAVE_HELPER_CURL_OPTS:-} "$@"; }

case "$verb" in
  lookup)
    dir=${XDG_CACHE_HOME:-$HOME/.cache}/cleave-curl-helper
    mkdir -p "$dir"
    if fetch --output "$dir/$key.tar.part" "$url/$key.tar" 2>/dev/null; then
      mv "$dir/$key.tar.part" "$dir/$key.tar"
      printf '{"found":true,"entry":"%s","mode":"copy"}\n' "$dir/$key.tar"
    else
      rm -f "$dir/$key.tar.part"
      printf '{"found":false}\n'
    fi
    ;;
  store)
    entry=$(printf '%s' "$request" | grep -o '"entry":"[^"]*"' | head -n 1 | cut -d '"' -f 4)
    tar -C "$entry" -cf - . | fetch --upload-file - "$url/$key.tar" >/dev/null
    printf '{"relocated_to":"%s"}\n' "$url/$key.tar"
    ;;
  *)
    echo "unknown verb: $verb" >&2
    exit 1
    ;;
esac
