#!/usr/bin/env bash
# Runs the test suite once per Keras backend (tensorflow, jax, torch).
# Fails if any backend fails or collects no test (pytest exit code 5).
# Extra arguments go to pytest, e.g. `bash tests/run_all_backends.sh -x -k layers`.
# Each run lists its 15 slowest tests and its wall time: CI must stay under 45 minutes.
set -u
cd "$(dirname "$0")/.."
status=0
for backend in tensorflow jax torch; do
  echo "===== KERAS_BACKEND=$backend ====="
  started=$(date +%s)
  KERAS_BACKEND=$backend python -m pytest --durations=15 "$@"
  code=$?
  echo "===== KERAS_BACKEND=$backend: $(( $(date +%s) - started )) s ====="
  if [ "$code" -eq 5 ]; then
    echo "no test ran under $backend"; status=1
  elif [ "$code" -ne 0 ]; then
    echo "tests failed under $backend (exit $code)"; status=1
  fi
done
exit $status
