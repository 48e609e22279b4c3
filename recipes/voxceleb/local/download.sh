#!/usr/bin/env bash
# Download a file resumably and verify it.
#
#   local/download.sh DEST MD5 URL [URL ...]
#
# Tries each URL in turn (http(s):// or file://) until one succeeds. The data
# goes to DEST.part first (curl -C - / wget -c resume a broken transfer) and is
# renamed to DEST only once complete and, when MD5 is not "-", once its MD5
# matches. An existing DEST with the right MD5 is kept (nothing is fetched).
# Exit status: 0 done, 1 every URL failed or the checksum is wrong.
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "usage: $0 DEST MD5|- URL [URL ...]" >&2
  exit 2
fi
dest=$1 md5=$2
shift 2

md5_of() { md5sum "$1" | cut -d' ' -f1; }

if [ -s "$dest" ]; then
  if [ "$md5" = "-" ] || [ "$(md5_of "$dest")" = "$md5" ]; then
    echo "already downloaded: $dest"
    exit 0
  fi
  echo "$dest: MD5 is not $md5; moving it to $dest.bad and downloading again" >&2
  mv -f "$dest" "$dest.bad"
fi

mkdir -p "$(dirname "$dest")"
part=$dest.part

fetch() {  # fetch URL into $part, resuming what is there
  local url=$1
  if command -v curl >/dev/null 2>&1; then
    curl --fail --location --retry 3 --retry-delay 5 --connect-timeout 30 \
      --continue-at - --output "$part" "$url"
  elif [[ $url == file://* ]]; then
    cp "${url#file://}" "$part"
  elif command -v wget >/dev/null 2>&1; then
    wget --tries=3 --timeout=30 --continue --output-document="$part" "$url"
  else
    echo "neither curl nor wget is installed: install one of them" >&2
    return 1
  fi
}

for url in "$@"; do
  echo "downloading $url -> $dest"
  if ! fetch "$url"; then
    # a finished .part makes curl's resume fail (range not satisfiable): accept it if it checks out
    if [ "$md5" = "-" ] || [ ! -s "$part" ] || [ "$(md5_of "$part")" != "$md5" ]; then
      echo "  failed: $url" >&2
      continue
    fi
  fi
  if [ "$md5" != "-" ]; then
    got=$(md5_of "$part")
    if [ "$got" != "$md5" ]; then
      echo "  $url: MD5 $got, expected $md5 (corrupt or changed download); removed $part" >&2
      rm -f "$part"
      continue
    fi
  fi
  mv -f "$part" "$dest"
  echo "  ok: $dest"
  exit 0
done
echo "could not download $(basename "$dest") from: $*" >&2
exit 1
