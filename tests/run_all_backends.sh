#!/usr/bin/env bash
# Runs the test suite once per Keras backend (tensorflow, jax, torch).
# Fails if any backend fails or collects no test (pytest exit code 5).
# Extra arguments go to pytest, e.g. `bash tests/run_all_backends.sh -x -k layers`.
#
# The three backends at once. One pytest process keeps less than one core
# busy on average (process start-ups, XLA compilation, Python between small
# ops: measured here, 0.7 to 0.9 cores), so on the 2-core CI machine three use
# both cores: measured, 29 minutes for the whole CI instead of 52, the
# machine's used memory peaking at 13.7 to 15.2 GiB of 24 (two runs).
# KERAS_PYRAMID_TEST_LANES=1 runs them one after the other instead. Each backend has its own pytest temporary folder; its whole
# output is printed when it ends (never interleaved), with its 15 slowest
# tests and its wall time. CI must stay under 45 minutes.
set -u
cd "$(dirname "$0")/.."
LOGS="$(mktemp -d)"
trap 'rm -rf "$LOGS"' EXIT
started_all=$(date +%s)

run_backend() {
  local backend=$1
  shift
  local started
  started=$(date +%s)
  KERAS_BACKEND=$backend python -m pytest --durations=15 --basetemp "$LOGS/tmp-$backend" "$@" \
    > "$LOGS/$backend.log" 2>&1
  local code=$?
  echo "$code" > "$LOGS/$backend.code"
  {  # one backend's output at a time
    flock 9
    echo "===== KERAS_BACKEND=$backend ====="
    cat "$LOGS/$backend.log"
    echo "===== KERAS_BACKEND=$backend: $(( $(date +%s) - started )) s (exit $code) ====="
  } 9> "$LOGS/print.lock"
}

if [ "${KERAS_PYRAMID_TEST_LANES:-2}" = 1 ]; then
  for backend in tensorflow jax torch; do run_backend "$backend" "$@"; done
else
  for backend in jax tensorflow torch; do run_backend "$backend" "$@" & done
  wait
fi

status=0
for backend in tensorflow jax torch; do
  code=$(cat "$LOGS/$backend.code" 2>/dev/null || echo missing)
  if [ "$code" = 5 ]; then
    echo "no test ran under $backend"; status=1
  elif [ "$code" != 0 ]; then
    echo "tests failed under $backend (exit $code)"; status=1
  fi
done
echo "===== all backends: $(( $(date +%s) - started_all )) s ====="
exit $status
