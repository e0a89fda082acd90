#!/usr/bin/env python3
"""Summarise `go test -json` output: failures in full, then one line per
package and a closing 'N passed, N failed, N skipped' line. Exits 1 on any
failure."""
import json
import sys
from collections import defaultdict

out = defaultdict(list)
results = {}
pkg_results = {}
for raw in open(sys.argv[1], encoding="utf-8", errors="replace"):
    try:
        ev = json.loads(raw)
    except json.JSONDecodeError:
        print(raw, end="")
        continue
    pkg, test, action = ev.get("Package", ""), ev.get("Test"), ev.get("Action")
    if action == "output":
        out[(pkg, test)].append(ev.get("Output", ""))
    elif action in ("pass", "fail", "skip"):
        if test:
            results[(pkg, test)] = action
        else:
            pkg_results[pkg] = (action, ev.get("Elapsed", 0))

failed = [k for k, v in results.items() if v == "fail"]
for k in failed:
    print("--- FAIL", k[0], k[1])
    print("".join(out[k]), end="")
for pkg, (action, elapsed) in sorted(pkg_results.items()):
    if action == "fail" and not any(p == pkg for p, _ in failed):
        print("".join(out[(pkg, None)]), end="")
    print(f"{action:4} {pkg} ({elapsed:.1f}s)")
skipped = [k for k, v in results.items() if v == "skip"]
for k in skipped:
    reason = "".join(out[k]).strip().splitlines()
    print("skip", k[0], k[1], "-", reason[-1] if reason else "")
passed = sum(1 for v in results.values() if v == "pass")
pkg_failed = sum(1 for a, _ in pkg_results.values() if a == "fail")
print(f"go: {passed} passed, {len(failed) + (pkg_failed if not failed else 0)} failed, {len(skipped)} skipped")
sys.exit(1 if failed or pkg_failed else 0)
