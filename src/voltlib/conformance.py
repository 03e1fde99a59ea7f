"""Coverage of the OCA OCPP 1.6 and 2.0.1 compliance test cases where the central system is under test.

The case list has one case a line, ``TC_004_1 RegularChargingSession_IdentificationFirst`` or
``TC_B_06 Get Variables - single value``. The test of a case is the function named after it, its
name's runs of other characters than letters and digits written ``_``:
``test_TC_004_1_RegularChargingSession_IdentificationFirst``, ``test_TC_B_06_Get_Variables_single_value``,
in ``tests/conformance`` (1.6) or ``tests/conformance_v201`` (2.0.1), found by parsing the files,
so nothing is imported or run. A case whose
test is skipped there is *later* (the skip reason says what voltlib lacks); a case listed in
:data:`ELSEWHERE` is covered by another suite. With ``run=True`` pytest runs ``tests/conformance``
with ``--junitxml`` and each case gets its result on every database backend.

Both case lists ship with the package (``voltlib/data``, read by :func:`packaged_cases`). The
2.0.1 cases of functional blocks outside :attr:`Suite.groups` are *later* (issue 17 brings them).
``voltlib conformance [--ocpp 1.6|2.0.1] [--cases PATH] [--run] [--markdown FILE]`` prints the tables.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

CASES_OCPP16 = "csms-test-cases-ocpp16.txt"  # in voltlib/data
CASES_OCPP201 = "csms-test-cases-ocpp201.txt"
CONFORMANCE_DIR = Path("tests/conformance")
CONFORMANCE_DIR_V201 = Path("tests/conformance_v201")
SECURITY_PROFILES = "tests/integration/test_security_profiles.py"

# Cases another suite covers, with why they are not in tests/conformance.
ELSEWHERE: dict[str, tuple[str, str]] = {
    "TC_083": (SECURITY_PROFILES, "security profile upgrade reconnects over TLS (profile 2/3)"),
    "TC_086": (SECURITY_PROFILES, "TLS server-side certificate (profile 2)"),
    "TC_087": (SECURITY_PROFILES, "TLS client-side certificate (profile 3)"),
}

# What a passing test does not show: voltlib's part of the case is smaller than the case.
NOTES: dict[str, str] = {
    "TC_080": "voltlib relays the signed firmware only if its signing certificate is valid and issued by a "
              "manufacturer root of firmware_signer_roots (422 otherwise), then records the status",
    "TC_081": "as TC_080; the station's InvalidFirmwareSignature is stored as a critical security event",
    "TC_074": "voltlib's built-in CA (ca_cert/ca_key settings) signs; a CSR with another CN, another O than "
              "cpo_name, a weak key or a bad signature is Rejected (docs/security.md)",
    "TC_077": "the charge point's report is stored as a critical security event; the certificate request is "
              "marked not_installed and a pinned fingerprint stays on the old certificate",
    "TC_088": "negotiation passes; when no offered subprotocol is supported the handshake completes without "
              "Sec-WebSocket-Protocol and the socket is closed (1002), as OCPP-J 1.6 §4.1.2 says",
}

# 2.0.1: what the OCTT's station sends that voltlib does not handle, and where voltlib's part is
# only to relay the operator's command and store the station's answer.
_NOTIFY_EVENT = ("the station's NotifyEvent (AvailabilityState) beside each StatusNotification is not sent by the "
                 "test (voltlib stores NotifyEvent in station_events, tests/conformance_v201/test_diagnostics.py); "
                 "the StatusNotification is stored per EVSE")
_RELAYED = ("voltlib relays the operator's raw command in 2.0.1, validated against the official schema, and "
            "stores the station's answer in the command's row")
NOTES_V201: dict[str, str] = {
    "TC_A_01": _NOTIFY_EVENT,
    "TC_A_06": "the TLS listener accepts TLS 1.2 and 1.3 only; the refused handshake is a tls_handshake_failed "
               "security event",
    "TC_A_09": "the operator's rotate-password sends SecurityCtrlr.BasicAuthPassword: 40 random hexadecimal "
               "characters; its hash replaces the old one only when the station accepts, and the command row keeps "
               "it redacted",
    "TC_B_01": _NOTIFY_EVENT,
    "TC_B_02": "the registration endpoint holds a station in Pending; the operator accepts it "
               "(POST .../registration), and its next BootNotification is Accepted",
    "TC_B_06": _RELAYED + "; the values read are kept in the device model (GET .../device-model)",
    "TC_B_07": _RELAYED + "; the values read are kept in the device model (GET .../device-model)",
    "TC_B_09": _RELAYED + "; the values the station took are kept in the device model",
    "TC_B_10": _RELAYED + "; the values the station took are kept in the device model",
    "TC_B_13": "POST .../device-model/refresh sends GetBaseReport FullInventory; the NotifyReport parts replace the "
               "stored model, browsed in GET .../device-model",
    "TC_B_42": _RELAYED + "; voltlib keeps no network profiles of its own",
    "TC_B_44": _RELAYED,
    "TC_C_06": "voltlib answers Blocked; the OCTT document's tool validation lists 'Linked or Invalid' for this "
               "case, which 2.0.1's AuthorizationStatus (Blocked) and the case's name contradict",
    "TC_C_08": "voltlib decides the idToken of a TransactionEvent again (E02.FR.04), whatever the station's cache said",
    "TC_C_47": "voltlib's part is the master pass's groupIdToken (its parent id tag); the station, configured with "
               "that MasterPassGroupId, stops the transactions; the stops are stored with stoppedReason MasterPass",
    "TC_C_48": "as TC_C_47, one transaction stopped, the other going on",
    "TC_C_49": "as TC_C_47, without the station's UI",
    "TC_E_29": "voltlib sends GetTransactionStatus when the operator asks (raw command), not by itself on reconnection",
    "TC_E_31": "as TC_E_29; the two held-back events are stored after the Ended without reopening it, and the gap "
               "they filled was a transaction_seq_gap security event",
    "TC_E_33": "as TC_E_29",
    "TC_F_12": "a MeterValuesRequest must name its EVSE (evseId is required in the 2.0.1 schema): each EVSE reports "
               "its own",
    "TC_F_27": _RELAYED,
    "TC_J_01": "the NotifyEvent (FiscalMetering) beside the meter values is not sent by the test (voltlib stores "
               "NotifyEvent in station_events); the values are stored with their own timestamps",
    "TC_J_02": "as TC_J_01",
    "TC_G_03": _NOTIFY_EVENT,
    "TC_G_05": _NOTIFY_EVENT,
}
_GET_LOG = ("voltlib relays the operator's GetLog (raw command; log.remoteLocation checked against "
            "security_upload_allow) and stores each LogStatusNotification as log_status before answering; an upload "
            "no GetLog ordered is the log_unrequested alert")
_CUSTOMER = ("the operator asks through POST /api/v1/members/{id}/customer-information (the member's badge as "
             "idToken, or the member id as customerIdentifier); the request, each NotifyCustomerInformation part "
             "and each read of them are audit-log entries")
NOTES_V201.update({
    "TC_N_25": _GET_LOG, "TC_N_34": _GET_LOG, "TC_N_35": _GET_LOG, "TC_N_36": _GET_LOG,
    "TC_N_27": _CUSTOMER, "TC_N_28": _CUSTOMER, "TC_N_29": _CUSTOMER, "TC_N_30": _CUSTOMER, "TC_N_31": _CUSTOMER,
    "TC_N_32": _CUSTOMER, "TC_N_62": _CUSTOMER,
    "TC_G_20": "the lock failure is a NotifyEvent (ConnectorPlugRetentionLock.Problem): stored in station_events, "
               "not a tamper",
})
ELSEWHERE_V201: dict[str, tuple[str, str]] = {
    "TC_A_19": ("tests/integration/test_security_profiles_v201.py",
                "the upgrade reconnects over TLS (profile 2) with voltlib's TLS listener and test PKI"),
}


@dataclass(frozen=True, slots=True)
class Case:
    id: str  # TC_004_1
    name: str  # RegularChargingSession_IdentificationFirst

    @property
    def test_name(self) -> str:
        return f"test_{self.id}_{re.sub(r'[^0-9A-Za-z]+', '_', self.name).strip('_')}"

    @property
    def group(self) -> str:
        """The 2.0.1 functional block of ``TC_B_06``: B (1.6 ids have none)."""
        parts = self.id.split("_")
        return parts[1] if len(parts) == 3 and parts[1].isalpha() else ""


@dataclass(frozen=True, slots=True)
class Suite:
    """One OCPP version's cases and where their tests live."""

    version: str
    cases: str  # packaged case list
    tests: Path
    elsewhere: dict[str, tuple[str, str]]
    notes: dict[str, str]
    groups: frozenset[str] | None = None  # the 2.0.1 blocks covered now; None: every case


@dataclass(frozen=True, slots=True)
class FoundTest:
    path: str  # relative to the repository root
    name: str
    skip_reason: str | None  # set when decorated with pytest.mark.skip(reason=...)


@dataclass(slots=True)
class Row:
    case: Case
    test: str  # path::name, or "" when missing
    result: str  # passed | failed | skipped-later | elsewhere | missing | not run
    detail: str = ""
    backends: list[str] = field(default_factory=list)


def packaged_cases(name: str = CASES_OCPP16) -> str:
    """The text of a case list shipped in ``voltlib/data`` (found from any working directory)."""
    return resources.files("voltlib.data").joinpath(name).read_text(encoding="utf-8")


def find_root(start: Path) -> Path:
    """The checkout whose ``tests/conformance`` the cases are matched with: ``start`` or one of its
    parents, else the checkout voltlib itself runs from (an editable install), else ``start``."""
    start = start.resolve()
    for candidate in (start, *start.parents, Path(__file__).resolve().parents[2]):
        if (candidate / CONFORMANCE_DIR).is_dir():
            return candidate
    return start


def read_cases(path: Path) -> list[Case]:
    return parse_cases(path.read_text(encoding="utf-8"))


def parse_cases(text: str) -> list[Case]:
    """Cases in file order; blank lines and ``#`` comments are ignored."""
    cases = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        case_id, _, name = line.partition(" ")
        cases.append(Case(case_id.strip(), name.strip()))
    return cases


def _skip_reason(node: ast.AsyncFunctionDef | ast.FunctionDef) -> str | None:
    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) in ("pytest.mark.skip", "mark.skip"):
            for keyword in decorator.keywords:
                if keyword.arg == "reason" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
            if decorator.args and isinstance(decorator.args[0], ast.Constant):
                return str(decorator.args[0].value)
            return "skipped"
    return None


def find_tests(root: Path, files: Iterable[Path]) -> dict[str, FoundTest]:
    """Top-level test functions of ``files`` by name (the first definition wins)."""
    found: dict[str, FoundTest] = {}
    for path in sorted(files):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        relative = path.relative_to(root).as_posix()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                found.setdefault(node.name, FoundTest(relative, node.name, _skip_reason(node)))
    return found


def run_pytest(root: Path, tests: Path = CONFORMANCE_DIR) -> tuple[int, dict[str, list[tuple[str, str, str]]]]:
    """Run pytest on ``tests``; return its exit code and, per test function, (backend, outcome, message)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "conformance.xml"
        completed = subprocess.run(
            [sys.executable, "-m", "pytest", str(tests), "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
            cwd=root, check=False, capture_output=True, text=True)
        sys.stderr.write(completed.stdout + completed.stderr)  # pytest's own report; the table goes to stdout
        outcomes: dict[str, list[tuple[str, str, str]]] = {}
        if report.exists():
            outcomes = parse_junit(report)
    return completed.returncode, outcomes


def parse_junit(report: Path) -> dict[str, list[tuple[str, str, str]]]:
    outcomes: dict[str, list[tuple[str, str, str]]] = {}
    for testcase in ET.parse(report).getroot().iter("testcase"):
        name = testcase.get("name", "")
        function, _, param = name.partition("[")
        outcome, message = "passed", ""
        for child in testcase:
            if child.tag in ("failure", "error"):
                outcome, message = "failed", child.get("message", "")
                break
            if child.tag == "skipped":
                outcome, message = "skipped", child.get("message", "")
        outcomes.setdefault(function, []).append((param.rstrip("]") or "-", outcome, message))
    return outcomes


def _combine(results: list[tuple[str, str, str]]) -> tuple[str, str, list[str]]:
    """One result for a test run on several backends: failed beats passed beats skipped."""
    kinds = {outcome for _, outcome, _ in results}
    passed = [backend for backend, outcome, _ in results if outcome == "passed"]
    if "failed" in kinds:
        failed = [f"{backend}: {message[:120]}" for backend, outcome, message in results if outcome == "failed"]
        return "failed", "; ".join(failed), passed
    if "passed" in kinds:
        skipped = [f"{backend} skipped ({message[:80]})" for backend, outcome, message in results
                   if outcome == "skipped"]
        return "passed", "; ".join(skipped), passed
    return "skipped", results[0][2] if results else "", passed


def coverage(cases_path: Path | None, root: Path = Path("."), *, run: bool = False,
             version: str = "1.6") -> tuple[list[Row], int]:
    """The coverage rows of every case (of the packaged list of ``version`` when ``cases_path`` is
    None), and pytest's exit code (0 when not run)."""
    suite = SUITES[version]
    root = root.resolve()
    cases = parse_cases(packaged_cases(suite.cases)) if cases_path is None else read_cases(cases_path)
    ours = find_tests(root, (root / suite.tests).glob("test_*.py"))
    elsewhere_files = {root / path for path, _ in suite.elsewhere.values()}
    theirs = find_tests(root, (p for p in elsewhere_files if p.exists()))
    exit_code, outcomes = run_pytest(root, suite.tests) if run else (0, {})
    rows = []
    for case in cases:
        test = ours.get(case.test_name)
        also = theirs.get(case.test_name)
        if also is None and case.id in suite.elsewhere:
            also = _named_for(theirs, case)
        if suite.groups is not None and case.group not in suite.groups and test is None:
            rows.append(Row(case, "", "later", f"block {case.group}: issue 17"))
            continue
        if case.id in suite.elsewhere:
            path, why = suite.elsewhere[case.id]
            where = f"{also.path}::{also.name}" if also else f"{path} (no test named after the case yet)"
            rows.append(Row(case, where, "elsewhere", why))
            continue
        if test is None:
            rows.append(Row(case, "", "missing", f"no test named after this case in {suite.tests}"))
            continue
        location = f"{test.path}::{test.name}"
        notes = [suite.notes[case.id]] if case.id in suite.notes else []
        if also is not None:
            notes.append(f"also {also.path}::{also.name}")
        if test.skip_reason is not None:
            rows.append(Row(case, location, "skipped-later", test.skip_reason))
            continue
        if not run:
            rows.append(Row(case, location, "not run", "; ".join(notes)))
            continue
        results = outcomes.get(test.name)
        if not results:
            rows.append(Row(case, location, "failed", "collected but not reported by pytest"))
            continue
        result, detail, backends = _combine(results)
        if result == "skipped":
            result = "skipped-later"
        rows.append(Row(case, location, result, "; ".join([*notes, detail] if detail else notes), backends))
    return rows, exit_code


def _named_for(tests: dict[str, FoundTest], case: Case) -> FoundTest | None:
    """Another suite's first test whose name starts with the case's id (``test_TC_A_19_...``)."""
    return next((t for name, t in sorted(tests.items()) if name.startswith(f"test_{case.id}_")), None)


def summary(rows: list[Row]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.result] = counts.get(row.result, 0) + 1
    return counts


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(rows: list[Row]) -> str:
    """The table as Markdown (readable in a terminal as it is)."""
    lines = ["| Case | Name | Test | Result | Backends | Notes |", "|---|---|---|---|---|---|"]
    for row in rows:
        test = f"`{row.test}`" if row.test and "::" in row.test else row.test
        lines.append(f"| {row.case.id} | {row.case.name} | {_cell(test)} | {row.result} | "
                     f"{', '.join(row.backends)} | {_cell(row.detail)} |")
    counts = summary(rows)
    total = len(rows)
    lines += ["", f"{total} cases: " + ", ".join(f"{count} {result}" for result, count in sorted(counts.items()))]
    return "\n".join(lines)


def write_markdown(path: Path, tables: dict[str, list[Row]], *, cases: Path | None = None, run: bool = False,
                   ocpp: str = "all") -> None:
    """docs/conformance.md: a table per OCPP version, when and by which command it was generated."""
    command = "voltlib conformance" + ("" if ocpp == "all" else f" --ocpp {ocpp}") + \
        ("" if cases is None else f" --cases {cases}") + (" --run" if run else "") + f" --markdown {path}"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = "\n".join(f"## OCPP {version}\n\n{render(rows)}\n" for version, rows in tables.items())
    path.write_text(
        "# OCPP conformance (central system under test)\n\n"
        "One test per OCA compliance test case, named after the case: `tests/conformance` for 1.6,\n"
        "`tests/conformance_v201` for 2.0.1. The charge point is the `ocpp` package's `ChargePoint` (its\n"
        "`v16` or `v201` module) over a real WebSocket; central-system steps go through voltlib's HTTP API;\n"
        "each test runs on SQLite and on PostgreSQL (the Backends column). The case lists are the OCA test\n"
        "tool's, packaged in `src/voltlib/data/` (its README says where they come from). 2.0.1 cases of the\n"
        "functional blocks still to come with issue 17 are *later*; firmware (L), certificates (M) and\n"
        "diagnostics (N) are covered. The OCA list has no case of block O (display messages): voltlib's are\n"
        "tested in tests/sharing/test_displays_v201.py and tests/integration/test_monitoring_v201.py; nor of\n"
        "block K (smart charging): the ISO 15118 charging needs and schedules (K15-K17) are tested in\n"
        "tests/conformance_v201/test_smart_charging_needs.py and tests/energy/test_car_needs.py; profiles\n"
        "(K01, K08-K10: set, clear, composite schedule, GetChargingProfiles/ReportChargingProfiles) in\n"
        "tests/integration/test_charging_profiles_api.py, external limits (K11-K13) in\n"
        "tests/energy/test_external_limits_live.py.\n\n"
        "The 2.0.1 tests follow the steps and tool validations of the OCTT test case document (OCPP 2.0.1\n"
        "part 6, section 3) and its reusable states (Booted, Authorized, EnergyTransferStarted, EVDisconnected...,\n"
        "methods of the test station's transaction). Steps the tool runs on a clock (clock-aligned and sampled\n"
        "meter values, timeouts) are sent one after the other with their timestamps an interval apart. The TLS\n"
        "cases (TC_A_04-08) run voltlib's TLS listener with the PKI of the security-profile tests. A test that\n"
        "shows a gap in voltlib is skipped with the gap as its reason (*skipped-later*).\n\n"
        f"Generated {stamp}, from the repository root, by:\n\n```\n{command}\n```\n\n{sections}",
        encoding="utf-8")


SUITES = {
    "1.6": Suite("1.6", CASES_OCPP16, CONFORMANCE_DIR, ELSEWHERE, NOTES),
    "2.0.1": Suite("2.0.1", CASES_OCPP201, CONFORMANCE_DIR_V201, ELSEWHERE_V201, NOTES_V201,
                   groups=frozenset("ABCEFGJLMNP")),
}
