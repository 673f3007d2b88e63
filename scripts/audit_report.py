"""Judge a ``pip-audit -f json`` report: known vulnerabilities must be explained in docs/hardening.md.

Exit codes: 0 clean (or every finding explained), 1 unexplained vulnerabilities,
2 the audit could not run (vulnerability service unreachable, packages not audited):
pip-audit itself prints "No known vulnerabilities found" and exits 0 when it could
look nothing up, so that case is caught here instead of passing silently.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

UNAUDITED_SHARE_LIMIT = 0.2  # more skipped than this: the database did not answer, not a few local packages


def explained_ids(docs: Path) -> set[str]:
    """Vulnerability ids (GHSA-..., PYSEC-..., CVE-...) named in the docs' audit section."""
    text = docs.read_text() if docs.is_file() else ""
    return set(re.findall(r"\b(?:GHSA-[\w-]{14}|PYSEC-\d{4}-\d+|CVE-\d{4}-\d+)\b", text))


def judge(report: dict, explained: set[str]) -> tuple[int, list[str]]:
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    lines: list[str] = []
    found = [(d["name"], d["version"], v) for d in deps for v in d.get("vulns", [])]
    unexplained = [(n, ver, v) for n, ver, v in found if not ({v["id"], *v.get("aliases", [])} & explained)]
    for name, version, vuln in found:
        mark = "UNEXPLAINED" if (name, version, vuln) in unexplained else "explained"
        lines.append(f"{mark}: {name} {version} {vuln['id']} (fix: {', '.join(vuln.get('fix_versions', [])) or '-'})")
    if not deps or len(skipped) > UNAUDITED_SHARE_LIMIT * len(deps):
        reason = skipped[0]["skip_reason"] if skipped else "empty report"
        lines.append(f"AUDIT DID NOT RUN: {len(skipped)} of {len(deps)} packages could not be audited "
                     f"(first reason: {reason}); the vulnerability database is unreachable from here")
        return 2, lines
    lines.append(f"audited {len(deps) - len(skipped)} packages: {len(found)} known vulnerabilities, "
                 f"{len(unexplained)} unexplained; {len(skipped)} not audited (not on PyPI)")
    return (1 if unexplained else 0), lines


def main(report_path: str, docs_path: str) -> int:
    text = Path(report_path).read_text()
    try:
        report = json.loads(text)
    except ValueError:
        print(f"AUDIT DID NOT RUN: pip-audit wrote no JSON report:\n{text[-2000:]}")
        return 2
    code, lines = judge(report, explained_ids(Path(docs_path)))
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
