#!/usr/bin/env bash
# The README's six canonical frames at 1280x720, rendered headless (no window).
#   assets/readme/canonical.sh                 # after: this checkout, into assets/readme/frames/
#   assets/readme/canonical.sh before BINARY   # before: a tensorcity built from 827df62
# (827df62 is the last commit before the visual design; its `render` had no
# --at/--heads/--select, so its last three frames are its viewer's window under
# Xvfb, driven by a frame script, which is what a user saw then.)
# The PNGs are stored as JPEG (quality ~95) to keep the repository small.
set -euo pipefail
cd "$(dirname "$0")/../.."
frames=assets/readme/frames
mkdir -p "$frames"
out=$(mktemp -d)
trap 'for f in "$out"/*.png; do ffmpeg -loglevel error -y -i "$f" -q:v 2 "$frames/$(basename "${f%.png}").jpg"; done; rm -rf "$out"' EXIT
prompt="ROMEO: But soft, what light through yonder window breaks?"

if [ "${1:-}" = before ]; then
  tc=$2
  "$tc" render gpt2 --offline --out "$out/before-1-gpt2-trunk.png"
  "$tc" render meta-llama/Llama-3.1-405B --offline --layout floors --out "$out/before-2-llama-405b-floors.png"
  "$tc" render mistralai/Mixtral-8x7B-v0.1 --offline --layout floors --out "$out/before-3-mixtral-floors.png"
  script=$(mktemp)
  for shot in "4-city-mid-run:playhead 3.5" "5-city-one-head:playhead 6" "6-city-close-up:select 5
zoom 0.3"; do
    name=${shot%%:*}
    printf 'wait-ready\nprompt %s\nwait-run\nlayout city\nframes 30\n%s\nframes 30\nscreenshot %s\nexit\n' \
      "$prompt" "${shot#*:}" "$out/before-$name.png" >"$script"
    xvfb-run -a -s "-screen 0 1280x720x24" "$tc" view --size 1280x720 --script "$script"
  done
  rm -f "$script"
  exit 0
fi

tc() { cargo run --quiet -- "$@"; }
tc render gpt2 --offline --out "$out/after-1-gpt2-trunk.png"
tc render meta-llama/Llama-3.1-405B --offline --layout floors --out "$out/after-2-llama-405b-floors.png"
tc render mistralai/Mixtral-8x7B-v0.1 --offline --layout floors --out "$out/after-3-mixtral-floors.png"
tc render --prompt "$prompt" --at 3.5 --out "$out/after-4-city-mid-run.png"
tc render --prompt "$prompt" --heads 2 --out "$out/after-5-city-one-head.png"
tc render --prompt "$prompt" --select 5 --camera 20,12,0.35,0.3 --out "$out/after-6-city-close-up.png"
