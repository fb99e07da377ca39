#!/usr/bin/env bash
# Smoke test of the built bundle (installers/build_bundle.sh), as a user without Python would run it:
#   bash installers/smoke_test.sh [BUNDLE_DIR]        (default dist/SplatStudio)
# Under Xvfb (xvfb-run) and `env -i` — no virtual environment, no PYTHONPATH, and `python`/`python3` on PATH
# are traps that fail loudly — it:
#   0. imports every bundled library and compiles a cached, parallel numba function,
#   1. writes a generated photo set (`splatstudio sample`),
#   2. reconstructs it with a few hundred iterations (`splatstudio reconstruct`): every stage process and
#      the trainer run through the bundle's executable,
#   3. trains again from the numba cache (kernels compiled in step 2 must be reused),
#   4. exports .ply and .splat, renders screenshots of both with `splatstudio view FILE --screenshot`,
#   5. opens the library window, measures the time until it is on screen, waits for the project's
#      thumbnail (rendered by a subprocess of the window), then closes it.
# Artifacts (screenshots, logs) go to test-artifacts/smoke/. Exit status 0 when everything passed.
set -euo pipefail

if [ "${1:-}" != "--inner" ]; then
  cd "$(dirname "$0")/.."
  bundle=$(cd "${1:-dist/SplatStudio}" && pwd)
  exe="$bundle/splatstudio"
  [ -x "$exe" ] || { echo "no bundle at $bundle: run bash installers/build_bundle.sh first" >&2; exit 2; }
  artifacts="$(pwd)/test-artifacts/smoke"
  rm -rf "$artifacts" && mkdir -p "$artifacts"
  work=$(mktemp -d /tmp/splatstudio-smoke.XXXXXX)
  mkdir -p "$work/home" "$work/bin"
  for name in python python3 pip pip3; do  # anything that reaches for a system Python fails the test
    printf '#!/bin/sh\necho "smoke test: %s was called: $*" >&2\nexit 97\n' "$name" > "$work/bin/$name"
    chmod +x "$work/bin/$name"
  done
  clean=("PATH=$work/bin:/usr/bin:/bin" "HOME=$work/home" "LANG=C.UTF-8" "NUMBA_CACHE_DIR=$work/numba-cache")
  inner=(/bin/bash "$(pwd)/installers/smoke_test.sh" --inner "$exe" "$work" "$artifacts")
  status=0
  if command -v xvfb-run >/dev/null; then
    # shellcheck disable=SC2016
    xvfb-run -a -s "-screen 0 1600x1000x24" /bin/bash -c \
      'exec env -i "DISPLAY=$DISPLAY" "XAUTHORITY=$XAUTHORITY" "$@"' _ "${clean[@]}" "${inner[@]}" || status=$?
  elif [ -n "${DISPLAY:-}" ]; then  # a desktop session without xvfb-run: windows flash up on screen
    env -i "DISPLAY=$DISPLAY" "XAUTHORITY=${XAUTHORITY:-$HOME/.Xauthority}" "${clean[@]}" "${inner[@]}" || status=$?
  else
    echo "needs xvfb-run (Debian: apt-get install xvfb xauth) or a display" >&2; exit 2
  fi
  if [ "$status" -eq 0 ]; then rm -rf "$work"; echo "SMOKE TEST PASSED"; else echo "SMOKE TEST FAILED (work folder kept: $work)"; fi
  exit "$status"
fi

# --- inside Xvfb, with a clean environment -------------------------------------------------------------
exe=$2 work=$3 artifacts=$4
lib="$work/library"
export QT_QPA_PLATFORM=xcb
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
TINY=(--set min_image_size=200 --set max_features=2048 --set iterations=300 --set densify_from_iter=50
      --set densify_until_iter=200 --set densification_interval=50 --set preview_every=100
      --set train_resolution=1)

step "environment: $(env | sort | tr '\n' ' ')"
"$exe" --version

step "0. the bundled libraries load (the bundle runs this script as \`python check.py\`)"
cat > "$work/check.py" <<'PY'
import importlib, sys, time
import numba
for name in ("torch", "numba", "llvmlite", "pycolmap", "scipy.spatial", "PIL.Image", "psutil", "zstandard",
             "PySide6.QtWidgets", "PySide6.QtSvg", "PySide6.QtOpenGL", "vispy.app", "vispy.gloo", "pyqtgraph",
             "OpenGL.GL", "pynvml"):
    module = importlib.import_module(name)
    print(f"  {name:<18} {getattr(module, '__version__', '')}")
@numba.njit(cache=True, parallel=True)
def total(n):
    s = 0.0
    for i in numba.prange(n):
        s += i
    return s
t0 = time.perf_counter(); assert total(1000) == 499500.0
print(f"  numba njit(parallel, cache) ok in {time.perf_counter() - t0:.1f} s, threading layer {numba.threading_layer()}")
print("  executable", sys.executable, "frozen", getattr(sys, "frozen", False))
PY
"$exe" --run-script "$work/check.py"

step "1. sample photos"
"$exe" sample "$work/photos" --count 16 --size 320x240 | tail -n 2

step "2. reconstruct through the bundle (stages and trainer are subprocesses of $exe)"
t0=$(now)
"$exe" --library "$lib" reconstruct "$work/photos" --name Smoke "${TINY[@]}" 2>&1 | tee "$artifacts/reconstruct.txt"
echo "reconstruction took $(since "$t0") s"
"$exe" --library "$lib" show Smoke | tee "$artifacts/show.txt"
project=$(find "$lib" -mindepth 1 -maxdepth 1 -type d -iname 'smoke*' | head -n 1)
[ -n "$project" ] || fail "no project folder in $lib"
cp -r "$project/logs" "$artifacts/logs" 2>/dev/null || true
grep -q -- "--run-script" "$project/logs/train.log" || fail "the trainer did not run through the bundle"
grep -q "$exe --run-script" "$project/logs/train.log" || fail "the trainer ran with another executable"
[ -s "$project/output/point_cloud.ply" ] || fail "no filtered point_cloud.ply in $project/output"
[ "$(grep -cE '^  .{28} done ' "$artifacts/show.txt")" -eq 7 ] || fail "not every stage is done (see $artifacts/show.txt)"

step "3. train again: numba must reuse the kernels cached by the first run"
cached=$(find "$work/numba-cache" -name '*.nbi' | wc -l)
[ "$cached" -gt 0 ] || fail "numba cached no kernels (NUMBA_CACHE_DIR=$work/numba-cache)"
before=$(find "$work/numba-cache" -name '*.nbc' | wc -l)
t0=$(now)
"$exe" --library "$lib" run Smoke --from train | tail -n 4
echo "second training run took $(since "$t0") s; $cached kernel index files, $before compiled entries before,"\
     "$(find "$work/numba-cache" -name '*.nbc' | wc -l) after"

step "4. export, convert, screenshots"
"$exe" --library "$lib" export Smoke --format ply -o "$work/smoke.ply"
"$exe" convert "$work/smoke.ply" "$work/smoke.splat"
"$exe" view "$work/smoke.ply" --screenshot "$artifacts/view_ply.png" --size 640x480
"$exe" view "$work/smoke.splat" --screenshot "$artifacts/view_splat.png" --size 640x480
for png in view_ply view_splat; do
  size=$(stat -c %s "$artifacts/$png.png")
  [ "$size" -gt 5000 ] || fail "$png.png is $size bytes: an empty render?"
done

step "5. the library window"
t0=$(now)
"$exe" --library "$lib" > "$artifacts/gui.txt" 2>&1 &
gui=$!
shown=""
for _ in $(seq 1 600); do  # up to 60 s
  for id in $(xwininfo -root -tree 2>/dev/null | awk '/"SplatStudio": \("/ { print $1 }'); do  # top-level, with WM_CLASS
    if xwininfo -id "$id" 2>/dev/null | grep -q "IsViewable"; then shown=$(since "$t0"); break 2; fi
  done
  kill -0 "$gui" 2>/dev/null || break
  sleep 0.1
done
[ -n "$shown" ] || { cat "$artifacts/gui.txt"; fail "the window did not appear within 60 s"; }
echo "library window on screen after $shown s"
echo "$shown" > "$artifacts/startup_seconds.txt"
# The library renders the project's thumbnail in a subprocess (`<executable> -m splatstudio view ...`).
for _ in $(seq 1 120); do [ -s "$project/output/thumbnail.png" ] && break; sleep 0.5; done
[ -s "$project/output/thumbnail.png" ] || { cat "$artifacts/gui.txt"; fail "the library rendered no thumbnail in 60 s"; }
echo "thumbnail rendered by a subprocess of the window: $project/output/thumbnail.png"
sleep 1
if command -v import >/dev/null; then import -window root "$artifacts/library_window.png" 2>/dev/null || true; fi
kill -0 "$gui" 2>/dev/null || fail "the window closed by itself: $(cat "$artifacts/gui.txt")"
kill -TERM "$gui"
wait "$gui" 2>/dev/null || true
if grep -q "Traceback" "$artifacts/gui.txt"; then cat "$artifacts/gui.txt"; fail "the window printed a traceback"; fi
echo "all steps passed"
