#!/usr/bin/env bash
# Records a real run of the demo (`cargo run --example demo`: alice, bob and carol chat, bob
# and the server are killed with kill -9 and come back, four replicas compared byte for byte)
# with asciinema, and renders it as the animated SVG that the README opens with.
#
#   scripts/record-demo.sh [PORT [CAST]]   (port 47600 by default; writes docs/demo.svg, and
#                                           keeps the asciinema recording as CAST if given)
#
# Needs asciinema (`pip install asciinema`, or Debian's `asciinema`; it brings python3, which
# trims the pauses) and svg-term (`npm install -g svg-term-cli`). Re-runnable: each run
# replaces docs/demo.svg. Every datagram stays on 127.0.0.1, as in the demo. Nothing else (no
# test) depends on these tools.
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
need python3 "apt-get install python3"

# Build first, so the recording shows the chat and not the compiler. The demo itself runs
# `cargo build --release --bins`; built alone (the example's dev-dependencies left out), the
# binaries are what that build expects, and it returns at once.
cargo build --release --locked --example demo
cargo build --release --locked --bins

raw="$(mktemp --suffix=.cast)"
trap 'rm -f "$raw"' EXIT
cast="${2:-$raw.trimmed}"
[ -n "${2:-}" ] || trap 'rm -f "$raw" "$cast"' EXIT
asciinema rec --overwrite --quiet --cols "$cols" --rows "$rows" \
    --title "mcast-chat demo" --command "target/release/examples/demo $port" "$raw"
grep -q 'byte-identical: yes' "$raw" || {
    echo "error: the demo did not end with identical replicas; its recording: $raw" >&2
    trap - EXIT
    exit 1
}

# Pauses longer than a second are cut to one (the story stays, the waiting goes), and the
# last screen, the replicas side by side, stays 6 s before the animation starts over.
python3 - "$raw" "$cast" <<'PY'
import json, sys
src, dst = sys.argv[1], sys.argv[2]
lines = open(src).read().splitlines()
out, prev, t = [lines[0]], 0.0, 0.0
for line in lines[1:]:
    event = json.loads(line)
    t += min(event[0] - prev, 1.0)
    prev, event[0] = event[0], round(t, 6)
    out.append(json.dumps(event))
out.append(json.dumps([round(t + 6, 6), "o", ""]))
open(dst, "w").write("\n".join(out) + "\n")
PY

svg-term --in "$cast" --out "$out" --window --no-cursor --width "$cols" --height "$rows"
echo "wrote $out ($(du -k "$out" | cut -f1) KiB)"
