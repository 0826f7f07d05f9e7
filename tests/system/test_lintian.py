"""The package as each release checks it: the source and the .deb built on
the release (conftest.py), checked by that release's lintian with
--pedantic in a throwaway copy of its build root. Nothing may remain: every
tag is fixed or overridden with its reason beside it (debian/source/
lintian-overrides, debian/mping-sender.lintian-overrides).
"""

from __future__ import annotations

import re
import subprocess
import time

from debpkg import in_build_root

# Tags of one release's lintian that the other's contradicts: overriding
# them would be an error under Debian 13's lintian (an override of a tag it
# no longer has) or an unused override. They are allowed here, each with
# its reason, on that release only.
ONLY_ON = {
    "bookworm": {
        "newer-standards-version": "the package follows policy 4.7.2 (Debian 13's); Debian 12's lintian knows 4.6.2",
        "package-supports-alternative-init-but-no-init.d-script":
            "policy 4.7.0 asks for no init script beside a unit; Debian 13's lintian has no such tag",
    },
}
TAG = re.compile(r"^([EWIPXCO]): \S+(?: source)?: (\S+)")


def test_lintian_pedantic_leaves_no_tag(release, deb):
    (changes,) = deb.parent.glob("mping-sender_*.changes")
    started = time.monotonic()
    argv = in_build_root(release, deb.parent, "/build", "lintian", "--pedantic", "--display-info",
                         "--show-overrides", f"/build/{changes.name}")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    version = subprocess.run(in_build_root(release, deb.parent, "/build", "lintian", "--version"),
                             capture_output=True, text=True, timeout=120).stdout.strip()
    tags = [(m.group(1), m.group(2), line) for line in result.stdout.splitlines() if (m := TAG.match(line))]
    print(f"\n{release}: {version} on {changes.name} in {time.monotonic() - started:.0f} s: "
          f"{sum(kind == 'O' for kind, _, _ in tags)} overridden tags")
    allowed = ONLY_ON.get(release, {})
    for kind, tag, line in tags:
        if tag in allowed:
            print(f"  {line}  -- {allowed[tag]}")
    left = [line for kind, tag, line in tags if kind != "O" and tag not in allowed]
    assert result.returncode == 0 and not left, result.stdout + result.stderr[-2000:]
