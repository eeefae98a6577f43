#!/bin/sh
# Regenerates the digit recordings of the built-in audio captcha.
# Needs espeak-ng (1.51 was used) and sox (14.4.2 was used); see README.md.
# Run from this directory: sh generate.sh
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gen() { # locale voice words...
    loc=$1 voice=$2
    shift 2
    mkdir -p "$loc"
    d=0
    for word in "$@"; do
        espeak-ng -v "$voice" -s 140 -w "$tmp/$loc-$d.wav" "$word"
        # 8 kHz mono 16-bit PCM, leading/trailing silence trimmed, 5/10 ms
        # fades, peak-normalised to -3 dBFS, no dither (reproducible).
        sox -D "$tmp/$loc-$d.wav" -r 8000 -c 1 -b 16 -e signed-integer -t wav "$loc/$d.wav" \
            silence 1 0.01 0.5% fade t 0.005 reverse \
            silence 1 0.01 0.5% fade t 0.01 reverse norm -3
        d=$((d + 1))
    done
}
gen fr fr zéro un deux trois quatre cinq six sept huit neuf
gen en en zero one two three four five six seven eight nine
