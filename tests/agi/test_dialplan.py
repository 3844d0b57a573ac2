"""The sample dialplan: its structure, and what it does with every possible screening result.

There is no Asterisk here, so the file is parsed the way pbx_config reads it and run through a
small interpreter of the handful of standard applications it uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parents[2] / "agi" / "dialplan" / "extensions_callscreen.conf"
STANDARD_APPS = {"AGI", "GotoIf", "Goto", "Dial", "UserEvent", "Hangup", "Set", "NoOp", "ExecIf"}
FUNCTIONS = {"FILTER"}


@dataclass
class Step:
    context: str
    exten: str
    priority: int
    label: str
    app: str
    args: str
    line: int


@dataclass
class Dialplan:
    globals: dict[str, str] = field(default_factory=dict)
    steps: dict[tuple[str, str], list[Step]] = field(default_factory=dict)

    def contexts(self) -> set[str]:
        return {c for c, _ in self.steps}

    def extensions(self, context: str) -> list[str]:
        return [e for c, e in self.steps if c == context]


def parse(text: str) -> Dialplan:
    plan = Dialplan()
    context = ""
    last: tuple[str, str] | None = None
    for number, raw in enumerate(text.split("\n"), 1):
        line = re.sub(r"(?<!\\);.*$", "", raw).strip()
        if not line:
            continue
        if re.fullmatch(r"\[[A-Za-z0-9_-]+\]", line):
            context = line[1:-1]
            continue
        assert context, f"line {number}: outside any context"
        if context == "globals":
            name, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z_]+", name.strip()), f"line {number}: bad global"
            plan.globals[name.strip()] = value.strip()
            continue
        match = re.fullmatch(r"(exten|same)\s*=>\s*(.*)", line)
        assert match, f"line {number}: not an exten/same line: {line}"
        body = match.group(2)
        if match.group(1) == "exten":
            exten, priority, rest = body.split(",", 2)
            assert priority == "1", f"line {number}: an extension starts at priority 1"
            last = (context, exten)
            assert last not in plan.steps, f"line {number}: {exten} defined twice in {context}"
            plan.steps[last] = []
            label = ""
        else:
            assert last is not None and last[0] == context, f"line {number}: same => without exten"
            priority, rest = body.split(",", 1)
            pm = re.fullmatch(r"n(?:\(([a-z]+)\))?", priority)
            assert pm, f"line {number}: bad priority {priority}"
            label = pm.group(1) or ""
        am = re.fullmatch(r"([A-Za-z]+)\((.*)\)", rest)
        assert am, f"line {number}: not App(args): {rest}"
        steps = plan.steps[last]
        steps.append(Step(context, last[1], len(steps) + 1, label, am.group(1), am.group(2), number))
    return plan


PLAN = parse(CONF.read_text())


# --- a tiny interpreter for the apps used --------------------------------------------------------


def substitute(text: str, variables: dict[str, str]) -> str:
    """Expand ${VAR} and ${FILTER(chars,value)} innermost first, then $[a = b] / $[a != b]."""
    while True:
        match = re.search(r"\$\{([^${}]*)\}", text)
        if not match:
            break
        inner = match.group(1)
        fm = re.fullmatch(r"([A-Z]+)\((.*)\)", inner)
        if fm:
            assert fm.group(1) in FUNCTIONS, f"unknown function {fm.group(1)}"
            allowed, value = fm.group(2).split(",", 1)
            replacement = "".join(c for c in value if c in allowed)
        else:
            replacement = variables.get(inner, "")
        text = text[: match.start()] + replacement + text[match.end():]
    while True:
        match = re.search(r"\$\[\s*\"([^\"]*)\"\s*(!=|=)\s*\"([^\"]*)\"\s*\]", text)
        if not match:
            break
        equal = match.group(1) == match.group(3)
        truth = equal if match.group(2) == "=" else not equal
        text = text[: match.start()] + ("1" if truth else "0") + text[match.end():]
    return text


@dataclass
class Call:
    dialed: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    hangup_cause: str | None = None
    agi: list[str] = field(default_factory=list)


def run(exten: str, screen_answer: dict[str, str] | None, variables: dict[str, str] | None = None,
        dial_status: str = "ANSWER") -> tuple[Call, dict[str, str]]:
    """Run a call into [callscreen-outbound], then its h extension. ``screen_answer`` is what
    the screen AGI sets (None: the connection dropped, nothing is set)."""
    env = dict(PLAN.globals)
    env.update(variables or {})
    call = Call()
    context, ext = "callscreen-outbound", next(
        e for e in PLAN.extensions("callscreen-outbound") if _matches(e, exten))
    env["EXTEN"] = exten
    pc = 0
    for _ in range(200):
        steps = PLAN.steps[(context, ext)]
        if pc >= len(steps):
            break
        step = steps[pc]
        pc += 1
        args = step.args
        if step.app == "Goto":
            context, ext, priority = args.split(",")
            pc = int(priority) - 1
            env["EXTEN"] = ext
        elif step.app == "GotoIf":
            condition, _, targets = substitute(args, env).partition("?")
            yes, _, no = targets.partition(":")
            target = yes if condition.strip() == "1" else no
            if target:
                pc = _label(context, ext, target)
        elif step.app == "Set":
            name, _, value = args.partition("=")
            env[name] = substitute(value, env)
        elif step.app == "ExecIf":
            condition, _, action = args.partition("?")
            if substitute(condition, env).strip() == "1":
                am = re.fullmatch(r"Set\(([A-Z_]+)=(.*)\)", action)
                assert am, "ExecIf only runs Set here"
                env[am.group(1)] = substitute(am.group(2), env)
        elif step.app == "AGI":
            expanded = substitute(args, env)
            call.agi.append(expanded)
            if "/screen," in expanded:
                env["AGISTATUS"] = "SUCCESS"
                env.update(screen_answer or {})
        elif step.app == "Dial":
            call.dialed.append(substitute(args, env))
            env.update(DIALSTATUS=dial_status, ANSWEREDTIME="12" if dial_status == "ANSWER" else "")
        elif step.app == "UserEvent":
            call.events.append(substitute(args, env))
        elif step.app == "Hangup":
            call.hangup_cause = substitute(args, env)
            break
        elif step.app == "NoOp":
            pass
        else:
            raise AssertionError(f"app {step.app} not interpreted")
    env["HANGUPCAUSE"] = call.hangup_cause or "16"
    for step in PLAN.steps[(context, "h")]:
        if step.app == "GotoIf":
            condition, _, target = substitute(step.args, env).partition("?")
            if condition.strip() == "1":
                break
        elif step.app == "AGI":
            call.agi.append(substitute(step.args, env))
    return call, env


def _matches(pattern: str, exten: str) -> bool:
    if not pattern.startswith("_"):
        return pattern == exten
    regex = "".join({"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}.get(c, re.escape(c))
                    for c in pattern[1:])
    return re.fullmatch(regex, exten) is not None


def _label(context: str, exten: str, label: str) -> int:
    for i, step in enumerate(PLAN.steps[(context, exten)]):
        if step.label == label:
            return i
    raise AssertionError(f"no label {label} in {context},{exten}")


# --- structure ----------------------------------------------------------------------------------


def test_contexts_and_extensions_the_dialer_needs_exist() -> None:
    assert {"callscreen-outbound", "callscreen-screen"} <= PLAN.contexts()
    assert PLAN.extensions("callscreen-outbound") == ["_X.", "_+X."]
    assert set(PLAN.extensions("callscreen-screen")) == {"s", "h", "T"}
    assert {"CALLSCREEN_AGI", "CALLSCREEN_CAMPAIGN", "CALLSCREEN_DIAL_PREFIX",
            "CALLSCREEN_DIAL_SUFFIX"} <= set(PLAN.globals)


def test_the_screening_runs_under_a_timeout_that_is_cleared_before_dialing() -> None:
    steps = [f"{s.app}({s.args})" for s in PLAN.steps[("callscreen-screen", "s")]]
    agi = next(i for i, s in enumerate(steps) if s.startswith("AGI(${CALLSCREEN_AGI}/screen"))
    dial = next(i for i, s in enumerate(steps) if s.startswith("Dial("))
    assert "Set(AGIEXITONHANGUP=yes)" in steps[:agi]  # or a hung server keeps the AGI after the hang-up
    assert steps[agi - 1] == "Set(TIMEOUT(absolute)=${CALLSCREEN_SCREEN_TIMEOUT})"
    assert steps[agi + 1] == "Set(TIMEOUT(absolute)=0)" and agi + 1 < dial
    timed_out = [f"{s.app}({s.args})" for s in PLAN.steps[("callscreen-screen", "T")]]
    assert not any(s.startswith("Dial(") for s in timed_out) and timed_out[-1] == "Hangup(21)"
    assert "Set(SCREEN_RESULT=BLOCK)" in timed_out and PLAN.globals["CALLSCREEN_SCREEN_TIMEOUT"].isdigit()


def test_only_standard_applications_are_used() -> None:
    used = {s.app for steps in PLAN.steps.values() for s in steps}
    assert used <= STANDARD_APPS
    assert "System" not in CONF.read_text() and "EXEC" not in CONF.read_text()


def test_every_goto_target_and_label_exists() -> None:
    for (context, exten), steps in PLAN.steps.items():
        labels = {s.label for s in steps if s.label}
        assert len(labels) == len([s for s in steps if s.label]), f"duplicate label in {context},{exten}"
        for step in steps:
            if step.app == "GotoIf":
                targets = step.args.rsplit("?", 1)[1]
                for target in filter(None, targets.split(":")):
                    assert target in labels, f"line {step.line}: label {target} missing"
            if step.app == "Goto":
                ctx, ext, priority = step.args.split(",")
                assert (ctx, ext) in PLAN.steps, f"line {step.line}: {ctx},{ext} missing"
                assert 1 <= int(priority) <= len(PLAN.steps[(ctx, ext)])


def test_brackets_braces_and_quotes_balance_on_every_line() -> None:
    for steps in PLAN.steps.values():
        for step in steps:
            text = f"{step.app}({step.args})"
            for opening, closing in ("()", "{}", "[]"):
                depth = 0
                for ch in text:
                    depth += (ch == opening) - (ch == closing)
                    assert depth >= 0, f"line {step.line}: stray {closing}"
                assert depth == 0, f"line {step.line}: unbalanced {opening}{closing}"
            assert text.count('"') % 2 == 0, f"line {step.line}: odd quotes"


def test_result_comparisons_are_quoted_so_an_empty_value_parses() -> None:
    for steps in PLAN.steps.values():
        for step in steps:
            for expression in re.findall(r"\$\[([^\]]*)\]", step.args):
                assert re.fullmatch(r'\s*"\$\{[A-Z_]+\}"\s*!?=\s*"[A-Za-z0-9]*"\s*', expression), expression


def test_globals_hold_no_channel_variables() -> None:
    # [globals] is expanded at load time, without a channel: ${EXTEN} there would become "".
    assert not any("${" in value for value in PLAN.globals.values())


# --- behaviour ----------------------------------------------------------------------------------

ALLOW = {"SCREEN_RESULT": "ALLOW", "SCREEN_REASON": "consent", "SCREEN_BASIS": "consent:web_form:2026-05-01",
         "SCREEN_ID": "d-mwqzyg94-6da2e6a2"}


@pytest.mark.parametrize("exten", ["89991234567", "+79991234567"])
def test_allow_dials_the_screened_number_on_the_configured_trunk(exten: str) -> None:
    call, _env = run(exten, ALLOW, {"CALLSCREEN_CAMPAIGN": "spring"})
    assert call.agi[0] == f"agi://127.0.0.1:4573/screen,spring,{exten}"
    assert call.dialed == [f"PJSIP/{exten}@trunk,30,"]
    assert call.agi[1] == "agi://127.0.0.1:4573/outcome,d-mwqzyg94-6da2e6a2,ANSWER,12,16"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"SCREEN_RESULT": "BLOCK", "SCREEN_REASON": "opted_out", "SCREEN_ID": "d-1-00000000"}, "opted_out"),
        (None, "screening_unavailable"),  # FastAGI connection dropped: AGISTATUS=SUCCESS, nothing set
        ({"SCREEN_RESULT": ""}, "screening_unavailable"),
        ({"SCREEN_RESULT": "allow"}, "screening_unavailable"),
        ({"SCREEN_RESULT": "ALLOW "}, "screening_unavailable"),
        ({"SCREEN_RESULT": "MAYBE", "SCREEN_REASON": "consent"}, "screening_unavailable"),
    ],
)
def test_anything_but_allow_takes_the_block_path(answer: dict[str, str] | None, reason: str) -> None:
    call, _env = run("89991234567", answer)
    assert call.dialed == []
    assert call.hangup_cause == "21"
    assert call.events == [f"CallScreen,Result: BLOCK,Reason: {reason},ScreenId: "
                           f"{(answer or {}).get('SCREEN_ID', '')},AgiStatus: SUCCESS"]
    assert len(call.agi) == 1  # no outcome for a call that was never dialed


def test_stale_allow_left_on_the_channel_does_not_dial_when_screening_drops() -> None:
    call, _env = run("89991234567", None, {"SCREEN_RESULT": "ALLOW", "SCREEN_ID": "d-old-00000000"})
    assert call.dialed == [] and call.hangup_cause == "21"


def test_extension_junk_is_filtered_before_screening_and_dialing() -> None:
    call, _env = run("8999&PJSIP/premium@other", ALLOW)
    assert call.agi[0].endswith(",8999")  # what is screened is what would be dialed
    assert call.dialed == ["PJSIP/8999@trunk,30,"]


def test_default_campaign_comes_from_globals() -> None:
    call, _env = run("89991234567", ALLOW)
    assert call.agi[0] == "agi://127.0.0.1:4573/screen,default,89991234567"


@pytest.mark.parametrize("status", ["BUSY", "NOANSWER", "CHANUNAVAIL", "CONGESTION"])
def test_unanswered_allowed_calls_report_their_dial_status(status: str) -> None:
    call, _env = run("89991234567", ALLOW, dial_status=status)
    assert call.agi[1] == f"agi://127.0.0.1:4573/outcome,d-mwqzyg94-6da2e6a2,{status},,16"
