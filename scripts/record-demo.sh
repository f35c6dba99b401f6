#!/usr/bin/env bash
# Records a real run of the demo (`cargo run --example demo`: alice, bob and carol chat, bob
# and the server are killed with kill -9 and come back, four replicas compared byte for byte)
# with asciinema, and renders it as the animated SVG that the README opens with.
#
#   scripts/record-demo.sh [PORT]     (default port 47600; writes docs/demo.svg)
#
# Needs asciinema (`pip install asciinema`, or Debian's `asciinema`) and svg-term
# (`npm install -g svg-term-cli`). Re-runnable: each run replaces docs/demo.svg. Every
# datagram stays on 127.0.0.1, as in the demo. Nothing else (no test) depends on these tools.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${1:-47600}"
out=docs/demo.svg
cols=100
rows=32

need() {
    command -v "$1" >/dev/null || { echo "error: $1 not found; install it with: $2" >&2; exit 1; }
}
need asciinema "pip install asciinema   (or: apt-get install asciinema)"
need svg-term "npm install -g svg-term-cli"

# Build first, so the recording shows the chat and not the compiler.
cargo build --release --locked --bins --example demo

cast="$(mktemp --suffix=.cast)"
trap 'rm -f "$cast"' EXIT
# Pauses longer than a second are cut to one: the story stays, the waiting goes.
asciinema rec --overwrite --quiet --idle-time-limit 1 --cols "$cols" --rows "$rows" \
    --title "mcast-chat demo" --command "target/release/examples/demo $port" "$cast"
# The demo's exit status is in the cast only as its last words; check them.
grep -q 'byte-identical: yes' "$cast" || { echo "error: the demo did not converge; see $cast" >&2; trap - EXIT; exit 1; }

svg-term --in "$cast" --out "$out" --window --no-cursor --width "$cols" --height "$rows"
echo "wrote $out ($(du -k "$out" | cut -f1) KiB)"
