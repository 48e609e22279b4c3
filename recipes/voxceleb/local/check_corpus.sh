#!/usr/bin/env bash
# Count the speakers and audio files of a VoxCeleb folder and compare with the known figures.
#
#   local/check_corpus.sh NAME DIR EXT SPEAKERS FILES
#
# DIR must hold DIR/idXXXXX/<video>/NNNNN.EXT. Prints one line saying what was
# found. Exit status: 0 as expected, 1 folder missing or empty, 3 other counts.
set -euo pipefail

if [ $# -ne 5 ]; then
  echo "usage: $0 NAME DIR EXT SPEAKERS FILES" >&2
  exit 2
fi
name=$1 dir=$2 ext=$3 want_speakers=$4 want_files=$5

if [ ! -d "$dir" ]; then
  echo "$name: missing folder $dir (expected $want_speakers speakers, $want_files .$ext files as idXXXXX/<video>/NNNNN.$ext)"
  exit 1
fi
speakers=$(find -L "$dir" -mindepth 1 -maxdepth 1 -type d -name 'id*' | wc -l)
files=$(find -L "$dir" -mindepth 3 -maxdepth 3 -type f -name "*.$ext" | wc -l)
if [ "$files" -eq 0 ]; then
  echo "$name: no .$ext files in $dir (expected $want_speakers speakers, $want_files files as idXXXXX/<video>/NNNNN.$ext)"
  exit 1
fi
if [ "$speakers" -ne "$want_speakers" ] || [ "$files" -ne "$want_files" ]; then
  echo "$name: $dir has $speakers speakers and $files .$ext files; the full set has $want_speakers and $want_files"
  exit 3
fi
echo "$name: $dir ok ($speakers speakers, $files .$ext files)"
