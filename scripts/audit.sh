#!/usr/bin/env bash
# pip-audit (PyPI's vulnerability data) over every package installed in the service's environment.
# Exit 0: no unexplained known vulnerability; 1: unexplained ones (list printed);
# 2: the audit could not run (no network to the vulnerability service): never a silent pass.
# Usage: scripts/audit.sh [python]   (default .venv/bin/python; pip-audit must be installed there)
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
"$PY" -m pip_audit --local --format json --progress-spinner off --timeout "${AUDIT_TIMEOUT:-30}" \
    --output "$report" 2> "$report.err"
status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then
    echo "AUDIT DID NOT RUN: pip-audit exited $status:" >&2
    tail -20 "$report.err" >&2
    rm -f "$report.err"
    exit 2
fi
rm -f "$report.err"
"$PY" scripts/audit_report.py "$report" docs/hardening.md
