# Sourced by .ci/run and .ci/lowest. `pytest_status CODE` exits the calling script unless pytest's
# exit code CODE is 0; exit 5 (no test collected) is a failure too.
pytest_status() {
  if [ "$1" -eq 5 ]; then
    echo "pytest collected no tests: failing." >&2
    exit 1
  fi
  if [ "$1" -ne 0 ]; then
    exit "$1"
  fi
}
