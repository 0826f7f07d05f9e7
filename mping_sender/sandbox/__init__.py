"""The sandbox: applied once every socket and file is open, before the
first datagram. Layers, in order: no_new_privs, the securebits lock, no
capabilities, Landlock, no W+X memory (mdwe), seccomp. See SECURITY.md for
the model."""

from __future__ import annotations

from mping_sender.errors import FatalError
from mping_sender.sandbox import capabilities, landlock, mdwe, privs, seccomp
from mping_sender.sandbox.common import Outcome, Unavailable

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Tuple

    from mping_sender.log import Logger
    from mping_sender.sandbox.seccomp import Roles

# Each layer is called with the descriptors' roles (only seccomp uses them).
# mdwe comes before seccomp, which forbids prctl.
LAYERS: Tuple[Tuple[str, Callable[[Roles], Outcome]], ...] = (
    ("no_new_privs", lambda roles: privs.set_no_new_privs()),
    ("securebits", lambda roles: privs.lock_securebits()),
    ("caps", lambda roles: capabilities.drop_all()),
    ("landlock", lambda roles: landlock.restrict()),
    ("mdwe", lambda roles: mdwe.refuse_exec_gain()),
    ("seccomp", seccomp.install),
)
SUMMARY = ("no_new_privs", "securebits", "caps", "landlock", "seccomp", "mdwe")  # the summary line's order


class SandboxReport:
    """What each layer enforced ("off" when not tried, "unavailable" when it failed)."""

    __slots__ = ("layers", "details")

    def __init__(self) -> None:
        self.layers: Dict[str, str] = {name: "off" for name in SUMMARY}
        self.details: List[str] = []

    def summary(self) -> str:
        return "sandbox: " + " ".join(f"{name}={status}" for name, status in self.layers.items())


def versions() -> str:
    """libseccomp and Landlock as found, for the start-up line (loads libseccomp)."""
    found = seccomp.version()
    abi = landlock.abi()
    return (f"libseccomp {found if found else 'unavailable'}, "
            f"Landlock {f'ABI {abi}' if abi else 'unavailable'}")


def apply(policy: str, log: Logger, roles: Optional[Roles] = None) -> SandboxReport:
    """Apply every layer in order. ``require`` raises FatalError (exit 70) at
    the first layer that cannot be applied; ``best-effort`` warns once per
    missing layer and goes on; ``off`` only warns. ``roles`` names the
    descriptors the pinned calls may use (``syscall_groups.PINNED``): a
    call pinned to a role not given is not allowed at all."""
    report = SandboxReport()
    if policy == "off":
        log.warning("sandbox: off (--sandbox off): privileges, system calls and files are not restricted")
        return report
    seccomp.version()  # load libseccomp while files can still be opened
    for name, layer in LAYERS:
        try:
            outcome = layer(roles or {})
        except Unavailable as err:
            if policy == "require":
                raise FatalError(f"sandbox: {name} cannot be applied: {err} (--sandbox require)") from None
            log.warning("sandbox: %s not applied: %s", name, err)
            outcome = Outcome("unavailable")
        report.layers[name] = outcome.status
        report.details.extend(outcome.details)
    if report.layers["mdwe"] == "seccomp" and report.layers["seccomp"] == "unavailable":
        report.layers["mdwe"] = "unavailable"  # the filter that would have carried it is not there
    log.info("%s", report.summary())
    for line in report.details:
        log.debug("sandbox: %s", line)
    return report
