"""Hostile input (issue 3, point 6): signed garbage never gets a 5xx nor changes what it may not.

Hypothesis posts slash commands, block_actions, view_submissions and Events API callbacks to the
running app, every one with a valid signature: missing fields, wrong types, huge strings, odd
Unicode, unknown IDs, and button values / private_metadata forged to point at every request,
step and key assignment that exists. The clickers are people who approve nothing (OUTSIDER,
EMPLOYEE, ORPHAN and an ID nobody knows), so after every example:

- the HTTP status is below 500 (and never 401: every request is signed);
- nothing crashed on the way: no ERROR log line, in particular no ``event=listener_failed`` from
  the Bolt error handler, which would otherwise turn a crash into a quiet 200;
- no plaintext license key came back in a response;
- the decision, assignment, license_key and license_request tables are as they were, except for
  requests the clicker made for themselves (and what an automatic approval gives them).

Afterwards ``GET /healthz`` is 200 and an ordinary request → Approve still works.

Bodies that once broke the app are kept, one per kind, in ``ONCE_BROKEN`` with where the fix
lives; a deterministic test posts each of them, so none can come back unnoticed.

The CSV directory and YAML catalog imports are fuzzed too: a broken file is refused whole, with
the line (or product) that is wrong, and leaves the database as it was.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect
from sqlmodel import SQLModel, col, select

from bot import approvals, requests
from bot.catalog import load_catalog
from bot.directory import import_directory
from bot.errors import CatalogError, DirectoryError
from bot.runtime import Runtime
from bot.server import BotServer
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import Message, SlackSim
from handlers import ids
from storage.models import Assignment, Decision, LicenseKey, LicenseRequest, StepApprover
from tests import company
from tests.company import ADMIN, EMPLOYEE, IT1, MANAGER, NEWHIRE, ORPHAN, OUTSIDER

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
ON_POSTGRES = os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql")

# People who approve no step of anything (routing never picks them; checked after each run).
UNKNOWN = "UJUNK00001"
CLICKERS = (OUTSIDER, EMPLOYEE, ORPHAN, UNKNOWN)
APPROVERS = frozenset({MANAGER, IT1, company.IT2, ADMIN})
KEYS = (*company.INTELLIJ_KEYS, *company.SUBLIME_KEYS)
PRODUCTS = ("figma", "intellij", "sublime", "slack-huddles")

# Stand-ins the sender replaces with what the local Slack issues for the clicker.
REAL_TRIGGER = "$trigger"
REAL_RESPONSE_URL = "$response_url"
# A response_url on the local Slack that was never issued: posting to it fails (404) at once.
# (Not a closed port: slack_sdk retries connection errors with random jitter, in the
# dispatcher thread, and Hypothesis takes that for randomness inside its strategies.)
DEAD_RESPONSE_URL = "$dead_response_url"

SETTINGS = settings(
    deadline=None,
    # The server, database and sim are built once per test and shared by its examples on
    # purpose: the point is one long-lived app taking a stream of garbage.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


# --- the world the garbage is aimed at --------------------------------------------------------


@dataclass(frozen=True)
class World:
    request_ids: tuple[int, ...]
    assignment_ids: tuple[int, ...]


def seed_requests(rt: Runtime) -> World:
    """Requests in every state, decided by their real approvers, for forged values to hit."""

    def submit(asker: str, product: str, for_user: str | None = None) -> int:
        result = requests.submit(
            rt, asked_by=asker, product_id=product, justification="seed", for_user=for_user
        )
        return result.request_id

    def approve(request_id: int, step: int, actor: str) -> None:
        approvals.decide(rt, request_id=request_id, step=step, actor=actor, approve=True)

    approve(submit(EMPLOYEE, "sublime"), 0, ADMIN)  # approved: EMPLOYEE holds the only key
    new_ij = submit(NEWHIRE, "intellij")  # approved after both steps: NEWHIRE holds a key
    approve(new_ij, 0, MANAGER)
    approve(new_ij, 1, IT1)
    submit(EMPLOYEE, "intellij")  # pending, step 1 of 2
    submit(ORPHAN, "figma")  # pending with IT: ORPHAN has no manager
    denied = submit(NEWHIRE, "figma")
    approvals.decide(rt, request_id=denied, step=0, actor=MANAGER, approve=False, reason="no")
    approve(submit(MANAGER, "sublime"), 0, ADMIN)  # waitlisted: no sublime key left
    submit(MANAGER, "slack-huddles", for_user=NEWHIRE)  # approved at once: a seat
    orphan_ij = submit(ORPHAN, "intellij")  # pending, step 2 of 2
    approve(orphan_ij, 0, ADMIN)
    with rt.db.read() as session:
        request_ids = session.exec(select(LicenseRequest.id)).all()
        assignment_ids = session.exec(select(Assignment.id)).all()
        statuses = set(session.exec(select(LicenseRequest.status)).all())
    assert statuses == {"pending", "approved", "denied", "waitlisted"}
    return World(
        request_ids=tuple(sorted(i for i in request_ids if i is not None)),
        assignment_ids=tuple(sorted(i for i in assignment_ids if i is not None)),
    )


@dataclass(frozen=True)
class Ledger:
    """What the properties protect: who asked for what, its state, decisions, holdings, keys."""

    requests: dict[int, tuple[str, str, str, int]]
    decisions: dict[tuple[int, int], tuple[str, str, str]]
    assignments: dict[int, tuple[str, str, int | None, int | None, str]]
    keys: dict[int, tuple[str, str]]


def ledger(rt: Runtime) -> Ledger:
    with rt.db.read() as s:
        return Ledger(
            requests={
                r.id: (r.requester_id, r.requested_by, r.status, r.step)
                for r in s.exec(select(LicenseRequest))
                if r.id is not None
            },
            decisions={
                (d.request_id, d.step): (d.decider_id, d.outcome, d.reason)
                for d in s.exec(select(Decision))
            },
            assignments={
                a.id: (a.user_id, a.product_id, a.request_id, a.key_id, str(a.released_at))
                for a in s.exec(select(Assignment))
                if a.id is not None
            },
            keys={k.id: (k.product_id, k.ciphertext) for k in s.exec(select(LicenseKey)) if k.id},
        )


def assert_only_own_requests_added(before: Ledger, after: Ledger, clicker: str | None) -> None:
    for request_id, row in before.requests.items():
        assert after.requests.get(request_id) == row, f"request #{request_id} changed"
    new = set(after.requests) - set(before.requests)
    for request_id in new:
        requester, asked_by, _, _ = after.requests[request_id]
        assert clicker is not None and requester == asked_by == clicker, (
            f"request #{request_id} for {requester} by {asked_by}; the clicker was {clicker}"
        )
    for ref, decision in before.decisions.items():
        assert after.decisions.get(ref) == decision, f"decision {ref} changed"
    for ref in set(after.decisions) - set(before.decisions):
        decider, outcome, _ = after.decisions[ref]
        assert ref[0] in new and (decider, outcome) == ("licensebot", "auto"), (
            f"decision {ref} {after.decisions[ref]} added"
        )
    for assignment_id, held in before.assignments.items():
        assert after.assignments.get(assignment_id) == held, f"assignment {assignment_id} moved"
    for assignment_id in set(after.assignments) - set(before.assignments):
        user, _, for_request, _, _ = after.assignments[assignment_id]
        assert for_request in new and user == clicker, f"assignment {assignment_id} given"
    assert after.keys == before.keys


def assert_nobody_new_approves(rt: Runtime) -> None:
    with rt.db.read() as s:
        approvers = set(s.exec(select(StepApprover.approver_id)).all())
    assert approvers <= APPROVERS, approvers - APPROVERS


# --- posting a case and checking it ---------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One request as Slack would post it; ``clicker`` is who it claims to come from."""

    kind: str
    payload: Any  # form fields (list of pairs), or a JSON value
    clicker: str | None = None
    raw_tail: str = ""  # already-encoded bytes appended to a form body (bad percent-escapes)
    headers: tuple[tuple[str, str], ...] = ()


def materialize(value: Any, sender: SlackSender, clicker: str | None) -> Any:
    user = clicker or OUTSIDER
    if value == REAL_TRIGGER:
        return sender.sim.new_trigger_id(user)
    if value == REAL_RESPONSE_URL:
        return sender.sim.new_response_url(user=user, channel=sender.sim.dm_channel(user))
    if value == DEAD_RESPONSE_URL:
        return sender.sim.base_url + "/hooks/actions/T0/1/never-issued"
    if isinstance(value, dict):
        return {k: materialize(v, sender, clicker) for k, v in value.items()}
    if isinstance(value, list):
        return [materialize(v, sender, clicker) for v in value]
    if isinstance(value, tuple):
        return tuple(materialize(v, sender, clicker) for v in value)
    return value


def encode(case: Case, sender: SlackSender) -> tuple[bytes, str]:
    payload = materialize(case.payload, sender, case.clicker)
    if case.kind == "slash":
        return (urlencode(payload) + case.raw_tail).encode("ascii"), FORM
    if case.kind == "event":
        return json.dumps(payload).encode("ascii"), JSON
    return ("payload=" + quote(json.dumps(payload), safe="")).encode("ascii"), FORM


def post(sender: SlackSender, case: Case) -> httpx.Response:
    body, content_type = encode(case, sender)
    return sender.raw(body, content_type, headers=dict(case.headers))


def crashes(records: list[logging.LogRecord]) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()[:300]}"
        for r in records
        if r.levelno >= logging.ERROR and r.threadName != "outbox-dispatcher"
    ]


def assert_survived(response: httpx.Response, records: list[logging.LogRecord]) -> None:
    assert response.status_code < 500, response.text[:300]
    assert response.status_code != 401
    assert crashes(records) == []
    leaked = [k for k in KEYS if k in response.text]
    assert leaked == [], "a license key in an HTTP response"


class Errors(logging.Handler):
    """Every ERROR a logger emits while attached, whichever thread emitted it."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class Hostile:
    """Runs one property against the shared app; checks the app is still fine afterwards."""

    def __init__(
        self,
        runtime: Runtime,
        slack: SlackSim,
        sender: SlackSender,
        bot: BotServer,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        self.rt = runtime
        self.slack = slack
        self.sender = sender
        self.bot = bot
        self.caplog = caplog
        caplog.set_level(logging.WARNING)
        self.world = seed_requests(runtime)
        self.statuses: Counter[int] = Counter()
        # Failed deliveries are expected (junk response_urls); the dispatcher loop crashing
        # (event=dispatch_failed, between or during examples) is not.
        self.dispatcher = Errors()
        logging.getLogger("licensebot.dispatcher").addHandler(self.dispatcher)

    def close(self) -> None:
        logging.getLogger("licensebot.dispatcher").removeHandler(self.dispatcher)

    def check(self, case: Case) -> None:
        before = ledger(self.rt)
        self.caplog.clear()
        response = post(self.sender, case)
        records = list(self.caplog.records)
        self.statuses[response.status_code] += 1
        assert_survived(response, records)
        assert_only_own_requests_added(before, ledger(self.rt), case.clicker)

    def still_healthy(self) -> None:
        # Of what passed the envelope check (400), much must have reached a listener (200),
        # not just Bolt's 404: otherwise the listeners were not really exercised.
        passed = self.statuses.total() - self.statuses[400]
        assert self.statuses[200] >= 0.4 * passed and self.statuses[200] >= 10, self.statuses
        assert httpx.get(self.bot.url + "/healthz").status_code == 200
        assert_nobody_new_approves(self.rt)
        # An ordinary request and approval, over Slack, as if nothing had happened.
        self.caplog.clear()
        assert self.sender.slash(NEWHIRE, "request figma after the storm").status_code == 200
        with self.rt.db.read() as s:
            request_id = s.exec(
                select(LicenseRequest.id)
                .where(LicenseRequest.requester_id == NEWHIRE, LicenseRequest.status == "pending")
                .order_by(col(LicenseRequest.id).desc())
            ).first()
        assert request_id is not None
        card = self.slack.wait_for(card_for(self.slack, MANAGER, request_id), timeout=20)
        assert self.sender.click(MANAGER, card, label="Approve").status_code == 200
        with self.rt.db.read() as s:
            req = s.get(LicenseRequest, request_id)
            assert req is not None and req.status == "approved"
        self.slack.wait_for(
            dm_containing(
                self.slack, NEWHIRE, f"#{request_id} for Figma Professional was approved"
            ),
            timeout=20,
        )
        assert crashes(list(self.caplog.records)) == []
        assert self.dispatcher.messages == []


def card_for(slack: SlackSim, user: str, request_id: int) -> Callable[[], Message | None]:
    value = f'"value": "{request_id}:0"'

    def find() -> Message | None:
        found = [
            m
            for m in slack.messages_in(slack.dm_channel(user))
            if not m.is_ephemeral and value in json.dumps(m.blocks)
        ]
        return found[-1] if found else None

    return find


def dm_containing(slack: SlackSim, user: str, text: str) -> Callable[[], Message | None]:
    def find() -> Message | None:
        found = [m for m in slack.messages_in(slack.dm_channel(user)) if text in m.all_text]
        return found[-1] if found else None

    return find


@pytest.fixture
def hostile(
    runtime: Runtime,
    slack: SlackSim,
    sender: SlackSender,
    bot: BotServer,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[Hostile]:
    hostile = Hostile(runtime, slack, sender, bot, caplog)
    yield hostile
    hostile.close()


# --- strategies: the pieces ------------------------------------------------------------------

# Odd but valid text (form bodies cannot carry lone surrogates: those come as bad escapes).
ODD = (
    "\u202e",  # right-to-left override
    "\u200f",  # right-to-left mark
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",  # Arabic
    "\u05e2\u05d1\u05e8\u05d9\u05ea",  # Hebrew
    "\U0001f680",
    "\U0001f469\u200d\U0001f4bb",  # ZWJ sequence
    "e\u0301\u0301\u0301",  # combining marks
    "\ufeff",
    "\ufffd",
    "\u0000",
    "\r\n",
    "\t",
    "`",
    "*_~",
    "<@UMGR00001>",
    "<!channel>",
    "<!here|here>",
    "&amp;<>",
    "%00",
    "'; DROP TABLE license_request; --",
    "{{7*7}}",
    "\\",
    '"',
    ":",
    "0",
    "-1",
    "99999999999999999999",
    "\uff11",  # fullwidth digit one
    "\u00b2",  # superscript two: str.isdigit() says yes, int() says no
    "\u0661",  # Arabic-Indic digit one
)
SURROGATES = ("\ud800", "\udfff", "\udbff\udc00x\ud800")
# Percent-escapes a form body may carry that are not UTF-8 (Bolt decodes them with "replace").
BAD_ESCAPES = ("%ED%A0%80", "%ED%BF%BF", "%C0%80", "%FF%FE", "%E2%82", "%ZZ", "%", "%00", "%F4%90")


def odd_text(
    *, nul: bool = True, surrogates: bool = False, huge: bool = True
) -> st.SearchStrategy[str]:
    pieces = [p for p in ODD if nul or "\x00" not in p]
    if surrogates:
        pieces += SURROGATES
    small = st.text(max_size=30)
    if not nul:
        small = st.text(
            st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=30
        )
    mixed = st.lists(st.one_of(st.sampled_from(pieces), small), max_size=8).map("".join)
    options = [small, mixed]
    if huge:
        # Up to ~100 kB: a big paste, or a value blown up to push past every limit.
        options.append(
            st.builds(
                lambda piece, n: (piece * (n // max(len(piece), 1) + 1))[:n],
                st.sampled_from([p for p in pieces if p] + ["x", "9"]),
                st.integers(1_000, 100_000),
            )
        )
    return st.one_of(*options)


def json_junk() -> st.SearchStrategy[Any]:
    """Any JSON value: what a field holds when its sender got the type wrong."""
    leaf = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        odd_text(surrogates=True, huge=False),
    )
    return st.recursive(
        leaf,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=6,
    )


def ref_like() -> st.SearchStrategy[Any]:
    """Anything where Bolt looks for an ID (team, user, channel).

    Bolt runs ``"id" in value`` on these; shapes it would crash on (a number, a list holding
    "id") are refused with a 400 before it sees them (handlers/envelope.py)."""
    return st.one_of(
        st.none(),
        odd_text(huge=False),
        st.integers(),
        st.lists(st.integers() | st.just("id"), max_size=2),
        st.dictionaries(st.sampled_from(["id", "name", "team_id"]), json_junk(), max_size=3),
    )


def user_field(clicker: str) -> st.SearchStrategy[Any]:
    """The ``user`` of an interaction: the clicker, or a mangled version of them."""
    return st.one_of(
        st.just({"id": clicker, "username": "someone", "name": "someone", "team_id": "T1"}),
        st.just({"id": clicker}),
        st.just(clicker),
        st.none(),
        st.just([1, 2]),
        st.builds(lambda junk: {"id": junk}, json_junk()),
        st.sampled_from(
            [
                {"id": clicker.lower()},
                {"id": f" {clicker}"},
                {"id": f"{clicker}\x00"},
                {"id": "U" + "A" * 100_000},
                {"id": f"<@{MANAGER}>"},
                {"name": MANAGER},
                {},
            ]
        ),
    )


def claimed(user: Any) -> str | None:
    """Who the app may take the payload to come from: Slack's shape, a clicker's ID."""
    if isinstance(user, dict) and user.get("id") in CLICKERS:
        return str(user["id"])
    return None


def forged_values(world: World) -> st.SearchStrategy[Any]:
    ids_ = [*world.request_ids, 0, 999_999_999]
    step_refs = [f"{r}:{s}" for r in ids_ for s in range(4)]
    assignment_refs = [str(a) for a in [*world.assignment_ids, 0, 999_999_999]]
    malformed = [
        "-1:0",
        "1:-1",
        f"{2**63}:0",
        f"{10**30}:0",
        "1" * 5_000 + ":0",
        "1" * 5_000,
        "\u00b2:0",
        "\u0661:\u0660",
        "\uff11:\uff10",
        "1:0:0",
        " 1:0",
        "1:0\n",
        "1 :0",
        "+1:0",
        "0x1:0",
        "1e3:0",
        "1.0",
        "",
        ":",
        "-1",
        str(2**63),
        "lic-42",
    ]
    return st.one_of(
        st.sampled_from(step_refs + assignment_refs),
        st.sampled_from(malformed),
        odd_text(surrogates=True),
        json_junk(),
    )


def maybe(
    fields: dict[str, Any],
    draw: st.DrawFn,
    optional: tuple[str, ...],
    rarely: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Drop any of the ``optional`` keys, and now and then one of the ``rarely`` ones."""
    dropped = draw(st.sets(st.sampled_from(optional))) if optional else set()
    # 9, not 0: Hypothesis often draws all-zero (simplest) data, which must stay the common case.
    if rarely and draw(st.integers(0, 9)) == 9:
        dropped.add(draw(st.sampled_from(rarely)))
    return {k: v for k, v in fields.items() if k not in dropped}


def mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``common`` nine times in ten: most of the garbage must still reach a listener."""
    return st.integers(0, 9).flatmap(lambda n: rare if n == 9 else common)


def trigger_field() -> st.SearchStrategy[Any]:
    return st.one_of(st.just(REAL_TRIGGER), st.sampled_from(["", "1.2.x"]), json_junk())


def response_url_field() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from([REAL_RESPONSE_URL, DEAD_RESPONSE_URL]),
        st.sampled_from(
            [
                "javascript:alert(1)",
                "file:///etc/passwd",
                "ftp://127.0.0.1/x",
                "http://",
                "https://" + "a" * 3_000,
                "http://127.0.0.1/\x00",
                "http://[::1",
                "http://127.0.0.1:99999/x",
                "http://127.0.0.1:abc/x",
                "http://:80/x",
            ]
        ),
        json_junk(),
    )


# --- strategies: slash commands ----------------------------------------------------------------

MENTIONS = (
    f"<@{EMPLOYEE}|erik>",
    f"<@{NEWHIRE}|nina>",
    f"<@{MANAGER}>",
    f"<@{ORPHAN}|\u202eotto>",
    f"<@{OUTSIDER}|oscar>",
    f"@{NEWHIRE}",
    NEWHIRE,
    "<@UNOBODY01|ghost>",
    "<@W0000001|grid>",
    "<@U" + "A" * 200 + ">",
    "<@U>",
    "<@>",
    "<#C123|general>",
    "<!channel>",
)


@st.composite
def slash_text(draw: st.DrawFn) -> str:
    nul = True  # NUL is dropped before it reaches the database (bot/text.py)
    sub = draw(
        st.sampled_from(["request", "REQUEST", "Request", "mine", "catalog", "help", "audit", ""])
        | odd_text(nul=nul, huge=False)
    )
    args: list[str] = []
    if sub.lower() in ("request", "audit") or draw(st.booleans()):
        args.append(draw(st.sampled_from(PRODUCTS) | odd_text(nul=nul, huge=False)))
        if draw(st.booleans()):
            args += ["for", draw(st.sampled_from(MENTIONS) | odd_text(nul=nul, huge=False))]
        args.append(draw(odd_text(nul=nul)))
    separator = draw(st.sampled_from([" ", "  ", "\u00a0", "\t", "\n"]))
    text = separator.join([sub, *args]) if args else sub
    return draw(st.sampled_from([text, f" {text} ", text.upper()]))


@st.composite
def slash_commands(draw: st.DrawFn) -> Case:
    clicker = draw(st.sampled_from(CLICKERS))
    text = draw(slash_text())
    junk = odd_text()  # the app reads user_id, text and trigger_id only
    fields: dict[str, Any] = {
        "token": draw(st.sampled_from(["legacy-token", ""]) | junk),
        "team_id": draw(st.sampled_from(["T0SIM0001", ""]) | junk),
        "team_domain": draw(junk),
        "enterprise_id": draw(junk),
        "channel_id": draw(st.sampled_from(["CIT00001", "D123", ""]) | junk),
        "channel_name": draw(junk),
        "user_id": clicker,
        "user_name": draw(junk),
        "command": draw(mostly(st.just(ids.COMMAND), st.sampled_from(["/LICENSE", "/x", ""]))),
        "api_app_id": draw(junk),
        "is_enterprise_install": draw(st.sampled_from(["false", "true", "yes", ""])),
        "response_url": draw(st.sampled_from([REAL_RESPONSE_URL, DEAD_RESPONSE_URL])),
        "trigger_id": draw(st.sampled_from([REAL_TRIGGER, "1.2.x", ""])),
    }
    optional = tuple(k for k in fields if k != "command")
    fields = maybe(fields, draw, optional)
    pairs = [*fields.items(), ("text", text)]
    if draw(st.booleans()):
        # A repeated field: the last one wins (but never a second, approving user_id).
        pairs.insert(0, ("text", draw(odd_text(nul=True, huge=False))))
    tail = "".join(draw(st.lists(st.sampled_from(BAD_ESCAPES), max_size=3)))
    return Case("slash", pairs, clicker=clicker, raw_tail=tail)


# --- strategies: block_actions -----------------------------------------------------------------


@st.composite
def block_actions(draw: st.DrawFn, world: World) -> Case:
    clicker = draw(st.sampled_from(CLICKERS))
    user = draw(user_field(clicker))
    action: dict[str, Any] = {
        "type": draw(st.sampled_from(["button", "static_select", "overflow"]) | json_junk()),
        "action_id": draw(
            mostly(
                st.sampled_from([ids.ACTION_APPROVE, ids.ACTION_DENY, ids.ACTION_REVEAL]),
                st.sampled_from(["unknown", f"{ids.ACTION_APPROVE} ", ids.ACTION_DENY.upper()])
                | json_junk(),
            )
        ),
        "block_id": draw(st.sampled_from(["card", "lic_1"]) | json_junk()),
        "value": draw(forged_values(world)),
        "text": {"type": "plain_text", "text": draw(st.sampled_from(["Approve", "Deny"]))},
        "action_ts": "1700000005.000200",
    }
    action = maybe(
        action, draw, ("type", "block_id", "value", "text", "action_ts"), rarely=("action_id",)
    )
    extra = draw(st.lists(json_junk(), max_size=2))  # Bolt reads actions[0] only
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": user,
        "api_app_id": draw(st.just("A0SIM0001") | odd_text(huge=False)),
        "token": draw(odd_text(huge=False)),
        "trigger_id": draw(trigger_field()),
        "team": draw(st.just({"id": "T0SIM0001", "domain": "sim"}) | ref_like()),
        "enterprise": draw(st.none() | ref_like()),
        "is_enterprise_install": draw(json_junk()),
        "channel": draw(st.just({"id": "D123", "name": "directmessage"}) | ref_like()),
        "container": draw(
            st.just({"type": "message", "message_ts": "1.2", "is_ephemeral": True}) | json_junk()
        ),
        "response_url": draw(response_url_field()),
        "state": draw(st.just({"values": {}}) | json_junk()),
        "actions": [action, *extra],
    }
    optional = (
        "user",
        "api_app_id",
        "token",
        "trigger_id",
        "team",
        "enterprise",
        "is_enterprise_install",
        "channel",
        "container",
        "response_url",
        "state",
    )
    # Without actions nothing matches: an unhandled request (404).
    payload = maybe(payload, draw, optional, rarely=("actions",))
    return Case("action", payload, clicker=claimed(payload.get("user")))


# --- strategies: view_submission -------------------------------------------------------------


@st.composite
def view_state(draw: st.DrawFn, world: World) -> Any:
    def entry(key: str, value: Any) -> Any:
        return draw(
            st.just({"type": "plain_text_input", key: value}) | st.just({key: value}) | json_junk()
        )

    option = draw(
        st.builds(
            lambda v: {"text": {"type": "plain_text", "text": "x"}, "value": v},
            st.sampled_from(PRODUCTS) | odd_text(surrogates=True) | json_junk(),
        )
        | json_junk()
    )
    values: dict[str, Any] = {
        ids.BLOCK_REASON: {ids.INPUT_REASON: entry("value", draw(odd_text(surrogates=True)))},
        ids.BLOCK_PRODUCT: {ids.INPUT_PRODUCT: entry("selected_option", option)},
        ids.BLOCK_JUSTIFICATION: {
            ids.INPUT_JUSTIFICATION: entry("value", draw(odd_text(surrogates=True)))
        },
    }
    values = maybe(values, draw, tuple(values))
    if draw(st.booleans()):
        values[draw(st.text(max_size=5))] = draw(json_junk())
    return draw(
        st.just({"values": values})
        | st.just({"values": draw(json_junk())})
        | st.just({"values": {k: draw(json_junk()) for k in values}})
        | json_junk()
    )


@st.composite
def view_submissions(draw: st.DrawFn, world: World) -> Case:
    clicker = draw(st.sampled_from(CLICKERS))
    user = draw(user_field(clicker))
    view: dict[str, Any] = {
        "id": draw(
            st.builds(lambda n: f"VHOSTILE{n:04d}", st.integers(0, 9_999))
            | st.just("VHOSTILESAME")
            | json_junk()
            | st.just("V" + "x" * 300)
        ),
        "team_id": "T0SIM0001",
        "type": draw(st.just("modal") | json_junk()),
        "callback_id": draw(
            mostly(
                st.sampled_from([ids.VIEW_DENY, ids.VIEW_REQUEST]),
                st.sampled_from([ids.VIEW_REVEAL, "unknown", f"{ids.VIEW_DENY} "]) | json_junk(),
            )
        ),
        "private_metadata": draw(forged_values(world)),
        "state": draw(view_state(world)),
        "hash": "1700000000.abc",
        "title": {"type": "plain_text", "text": "x"},
    }
    view = maybe(
        view,
        draw,
        ("id", "team_id", "private_metadata", "state", "hash", "type"),
        rarely=("callback_id",),
    )
    payload: dict[str, Any] = {
        "type": "view_submission",
        "team": draw(st.just({"id": "T0SIM0001"}) | ref_like()),
        "user": user,
        "api_app_id": "A0SIM0001",
        "trigger_id": draw(trigger_field()),
        "view": view,
        "response_urls": draw(
            st.lists(
                st.fixed_dictionaries({"response_url": response_url_field()}),
                max_size=2,
            )
        ),
        "is_enterprise_install": draw(json_junk()),
    }
    optional = ("team", "user", "api_app_id", "trigger_id", "response_urls")
    return Case("view", maybe(payload, draw, optional), clicker=claimed(payload.get("user")))


# --- strategies: Events API ----------------------------------------------------------------------


@st.composite
def events(draw: st.DrawFn) -> Case:
    event: dict[str, Any] = {
        "type": draw(
            mostly(
                st.just("app_home_opened"),
                st.sampled_from(["message", "user_change", "tokens_revoked", "app_uninstalled"])
                | st.sampled_from(["", "APP_HOME_OPENED"])
                | json_junk(),
            )
        ),
        "user": draw(mostly(st.sampled_from([*CLICKERS, MANAGER]), ref_like())),
        "channel": draw(st.just("D123") | ref_like()),
        "tab": draw(
            mostly(st.just("home"), st.sampled_from(["messages", "HOME", ""]) | json_junk())
        ),
        "event_ts": draw(json_junk()),
        "view": draw(json_junk()),
        "text": draw(odd_text(surrogates=True)),
        "channel_type": draw(st.sampled_from(["im", "channel"]) | json_junk()),
        "subtype": draw(st.none() | json_junk()),
    }
    event = maybe(event, draw, tuple(k for k in event if k not in ("type", "user")), ("user",))
    envelope: dict[str, Any] = {
        "token": draw(odd_text(huge=False)),
        "team_id": draw(st.just("T0SIM0001") | ref_like()),
        "api_app_id": draw(st.just("A0SIM0001") | json_junk()),
        "type": draw(mostly(st.just("event_callback"), st.sampled_from(["url_verification", "x"]))),
        "event_id": draw(
            st.builds(lambda n: f"EvHOSTILE{n}", st.integers(0, 50))  # repeats: duplicates
            | st.sampled_from(["Ev\x00", "Ev\ud800", "E" * 100_000, "Ev" + "9" * 64, "", "E v"])
            | odd_text(surrogates=True)
            | json_junk()
        ),
        "event_time": draw(json_junk()),
        "event": event,
        "authorizations": draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "team_id": st.just("T0SIM0001") | json_junk(),
                        "user_id": st.just("U0BOT0001") | json_junk(),
                        "is_bot": json_junk(),
                    }
                ),
                max_size=2,
            )
        ),
        "is_ext_shared_channel": draw(json_junk()),
        "challenge": draw(json_junk()),
    }
    optional = tuple(k for k in envelope if k not in ("type", "event"))
    envelope = maybe(envelope, draw, optional, rarely=("event",))
    headers: tuple[tuple[str, str], ...] = ()
    if draw(st.booleans()):
        retry = draw(st.sampled_from(["1", "2", "-1", "x" * 100, ""]))
        headers = (("X-Slack-Retry-Num", retry), ("X-Slack-Retry-Reason", "http_timeout"))
    return Case("event", envelope, clicker=None, headers=headers)


# --- the properties ------------------------------------------------------------------------------


def test_slash_commands_of_every_shape(hostile: Hostile) -> None:
    @settings(SETTINGS, max_examples=90)
    @given(case=slash_commands())
    def property_(case: Case) -> None:
        hostile.check(case)

    property_()
    hostile.still_healthy()


def test_forged_and_malformed_button_clicks(hostile: Hostile) -> None:
    @settings(SETTINGS, max_examples=110)
    @given(case=block_actions(hostile.world))
    def property_(case: Case) -> None:
        hostile.check(case)

    property_()
    hostile.still_healthy()


def test_forged_and_malformed_modal_submissions(hostile: Hostile) -> None:
    @settings(SETTINGS, max_examples=70)
    @given(case=view_submissions(hostile.world))
    def property_(case: Case) -> None:
        hostile.check(case)

    property_()
    hostile.still_healthy()


def test_malformed_events(hostile: Hostile) -> None:
    @settings(SETTINGS, max_examples=50)
    @given(case=events())
    def property_(case: Case) -> None:
        hostile.check(case)

    property_()
    hostile.still_healthy()


def test_every_forged_step_and_key_reference_is_refused(hostile: Hostile) -> None:
    """Not left to chance: each request and step, and each assignment, by each clicker."""
    world = hostile.world
    refs = [f"{r}:{s}" for r in world.request_ids for s in range(3)]
    for clicker in (OUTSIDER, EMPLOYEE):
        for action_id, values in (
            (ids.ACTION_APPROVE, refs),
            (ids.ACTION_DENY, refs),
            (ids.ACTION_REVEAL, [str(a) for a in world.assignment_ids]),
        ):
            for value in values:
                action = {"type": "button", "action_id": action_id, "value": value}
                hostile.check(
                    Case(
                        "action",
                        {
                            "type": "block_actions",
                            "user": {"id": clicker},
                            "trigger_id": REAL_TRIGGER,
                            "response_url": REAL_RESPONSE_URL,
                            "actions": [action],
                        },
                        clicker=clicker,
                    )
                )
        for ref in refs:
            deny = {
                "type": "view_submission",
                "user": {"id": clicker},
                "view": {
                    "id": "VFORGED01",
                    "type": "modal",
                    "callback_id": ids.VIEW_DENY,
                    "private_metadata": ref,
                    "state": {
                        "values": {ids.BLOCK_REASON: {ids.INPUT_REASON: {"value": "forged"}}}
                    },
                },
            }
            hostile.check(Case("view", deny, clicker=clicker))
    hostile.still_healthy()


# --- what still breaks outside this test's files ---------------------------------------------

BLOCK_ACTIONS = {
    "type": "block_actions",
    "user": {"id": OUTSIDER},
    "trigger_id": "1.2.x",
    "actions": [{"action_id": ids.ACTION_APPROVE, "value": "1:0"}],
}


def _payload(obj: Any) -> bytes:
    return ("payload=" + quote(json.dumps(obj), safe="")).encode()


def _command(**fields: str) -> bytes:
    base = {"command": ids.COMMAND, "user_id": OUTSIDER, "text": "help", "trigger_id": "1.2.x"}
    return urlencode({**base, **fields}).encode()


# Bodies that once broke the app, each pinned with where the fix lives. Bolt parses and reads
# the body before any listener runs, so its crashes are stopped in front of it
# (handlers/endpoint.py + handlers/envelope.py: 400 for signed bodies of a shape Slack never
# sends).
ENVELOPE = "handlers/endpoint.py (envelope check before Bolt)"
# Reads command["user_id"] / ["trigger_id"] / text.strip() unchecked.
COMMANDS = "handlers/commands.py"
# Command text goes to the database: PostgreSQL refuses NUL, every driver lone surrogates.
TEXT = "bot/text.py storable(), in handlers/commands.py and bot/requests.py"
# user_id must look like a Slack user ID (the columns hold 32 characters).
USER_ID = "handlers/commands.py (user_id)"


@dataclass(frozen=True)
class Known:
    name: str
    body: bytes
    content_type: str
    fix_in: str
    clicker: str = OUTSIDER


ONCE_BROKEN = [
    Known("body-not-utf8", b"command=%2Flicense&user_id=UOUT00001&text=\xff\xfe", FORM, ENVELOPE),
    Known("payload-not-json", b"payload=%7Bnot+json", FORM, ENVELOPE),
    Known("payload-json-null", _payload(None), FORM, ENVELOPE),
    Known("json-body-a-list", b'["ssl_check"]', JSON, ENVELOPE),
    Known("team-a-number", _payload({**BLOCK_ACTIONS, "team": 5}), FORM, ENVELOPE),
    Known("user-a-number", _payload({**BLOCK_ACTIONS, "user": 5}), FORM, ENVELOPE),
    Known("user-list-with-id", _payload({**BLOCK_ACTIONS, "user": ["id"]}), FORM, ENVELOPE),
    Known("channel-a-number", _payload({**BLOCK_ACTIONS, "channel": 5}), FORM, ENVELOPE),
    Known("enterprise-a-number", _payload({**BLOCK_ACTIONS, "enterprise": 5}), FORM, ENVELOPE),
    Known("actions-empty", _payload({**BLOCK_ACTIONS, "actions": []}), FORM, ENVELOPE),
    Known("actions-a-string", _payload({**BLOCK_ACTIONS, "actions": "abc"}), FORM, ENVELOPE),
    Known("actions-an-object", _payload({**BLOCK_ACTIONS, "actions": {}}), FORM, ENVELOPE),
    Known("action-a-number", _payload({**BLOCK_ACTIONS, "actions": [5]}), FORM, ENVELOPE),
    Known(
        "view-a-string",
        _payload({"type": "view_submission", "user": {"id": OUTSIDER}, "view": "x"}),
        FORM,
        ENVELOPE,
    ),
    Known(
        "view-without-type",
        _payload(
            {
                "type": "view_submission",
                "user": {"id": OUTSIDER},
                "view": {"callback_id": ids.VIEW_DENY, "private_metadata": "1:0"},
            }
        ),
        FORM,
        ENVELOPE,
    ),
    Known(
        # Legitimate Slack: two inputs with response_url_enabled. Bolt's build_context logs
        # through context.logger before the context has one: KeyError 'logger'.
        "two-response_urls",
        _payload(
            {
                "type": "view_submission",
                "user": {"id": OUTSIDER},
                "view": {"callback_id": ids.VIEW_DENY, "type": "modal"},
                "response_urls": [{"response_url": "http://127.0.0.1:1/a"}] * 2,
            }
        ),
        FORM,
        ENVELOPE,
    ),
    Known(
        "response_urls-a-number",
        _payload(
            {
                "type": "view_submission",
                "user": {"id": OUTSIDER},
                "view": {"callback_id": ids.VIEW_DENY, "type": "modal"},
                "response_urls": 5,
            }
        ),
        FORM,
        ENVELOPE,
    ),
    Known(
        "event-a-string",
        json.dumps({"type": "event_callback", "event": "app_home_opened"}).encode(),
        JSON,
        ENVELOPE,
    ),
    Known(
        "event-user-a-number",
        json.dumps({"type": "event_callback", "event": {"type": "x", "user": 5}}).encode(),
        JSON,
        ENVELOPE,
    ),
    Known(
        "authorizations-a-number",
        json.dumps(
            {"type": "event_callback", "authorizations": 5, "event": {"type": "x"}}
        ).encode(),
        JSON,
        ENVELOPE,
    ),
    Known("command-without-user_id", b"command=%2Flicense&text=help", FORM, COMMANDS),
    Known(
        "bare-request-without-trigger_id",
        b"command=%2Flicense&user_id=UOUT00001&text=request",
        FORM,
        COMMANDS,
    ),
    Known(
        "shortcut-without-trigger_id",
        _payload(
            {"type": "shortcut", "callback_id": ids.SHORTCUT_REQUEST, "user": {"id": OUTSIDER}}
        ),
        FORM,
        COMMANDS,
    ),
    Known(
        "json-command-text-a-number",
        json.dumps({"command": ids.COMMAND, "user_id": OUTSIDER, "text": 5}).encode(),
        JSON,
        COMMANDS,
    ),
    Known(
        "json-command-lone-surrogate",
        json.dumps(
            {"command": ids.COMMAND, "user_id": OUTSIDER, "text": "request \ud800"}
        ).encode(),
        JSON,
        TEXT,
    ),
    Known(
        "nul-in-justification",
        _command(text="request figma why\x00"),
        FORM,
        TEXT,
    ),
    Known("nul-in-product", _command(text="request fig\x00ma"), FORM, TEXT),
    Known(
        "user_id-too-long",
        _command(user_id="U" + "A" * 40, text="request figma"),
        FORM,
        USER_ID,
        clicker="U" + "A" * 40,
    ),
    Known(
        "user_id-with-nul",
        _command(user_id="UOUT\x00", text="mine"),
        FORM,
        USER_ID,
    ),
]


def test_bodies_that_once_broke_the_app_now_survive(
    sender: SlackSender, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """Each ONCE_BROKEN body passes the same properties as the generated ones."""
    caplog.set_level(logging.WARNING)
    failures: list[str] = []
    for known in ONCE_BROKEN:
        caplog.clear()
        before = ledger(runtime)
        response = sender.raw(known.body, known.content_type)
        try:
            assert_survived(response, list(caplog.records))
            assert_only_own_requests_added(before, ledger(runtime), known.clicker)
        except AssertionError as exc:
            failures.append(f"{known.name} (fix in {known.fix_in}): {exc}")
    assert not failures, "\n".join(failures)


def test_a_command_that_mentions_payload_is_answered(
    sender: SlackSender, slack: SlackSim, runtime: Runtime
) -> None:
    response = sender.raw(_command(text="request figma for the payload team"), FORM)
    assert response.status_code == 200, response.text
    with runtime.db.read() as s:
        assert s.exec(select(LicenseRequest)).first() is not None


# --- imports: broken files are refused whole, with the line ---------------------------------


def every_row(rt: Runtime) -> dict[str, list[tuple[str, ...]]]:
    with rt.db.read() as session:
        connection = session.connection()
        present = set(inspect(connection).get_table_names())
        return {
            table.name: sorted(tuple(map(str, row)) for row in connection.execute(table.select()))
            for table in SQLModel.metadata.sorted_tables
            if table.name in present
        }


HEADER = "slack_user_id,email,name,manager_slack_user_id,department"
NAMES = st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=20).filter(
    lambda s: s.strip() != ""
)


@dataclass(frozen=True)
class Breakage:
    """How one CSV row is broken, and what the refusal must say about its line."""

    kind: str
    row: str
    says: str = ""  # besides "line N"


def csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


@st.composite
def broken_rows(draw: st.DrawFn, user: str, earlier: str) -> Breakage:
    name = csv_field(draw(NAMES))
    good = {"id": user, "email": f"{user.lower()}@example.com", "name": name, "mgr": "", "dept": ""}
    kind = draw(
        st.sampled_from(
            [
                "bad-id",
                "bad-email",
                "no-name",
                "bad-manager",
                "own-manager",
                "unknown-manager",
                "extra-field",
                "missing-field",
                "duplicate",
            ]
        )
    )
    row = dict(good)
    says = ""
    if kind == "bad-id":
        row["id"] = draw(st.sampled_from(["bob", "u123", "U", "U 123", "U" + "A" * 40, "Ü123"]))
        says = "is not a Slack user ID"
    elif kind == "bad-email":
        row["email"] = draw(st.sampled_from(["", "@", "bob", "bob@", "@@"]))
        says = "is not an email address"
    elif kind == "no-name":
        row["name"] = draw(st.sampled_from(["", " ", '""']))
        says = "name is empty"
    elif kind == "bad-manager":
        row["mgr"] = draw(st.sampled_from(["boss", "u1", "UMGR 001"]))
        says = "manager_slack_user_id"
    elif kind == "own-manager":
        row["mgr"] = user
        says = "cannot be their own manager"
    elif kind == "unknown-manager":
        row["mgr"] = "UGHOST0001"
        says = "is neither in this file nor in the directory"
    elif kind == "duplicate":
        row["id"] = earlier
        says = "is already on line"
    line = ",".join(row.values())
    if kind == "extra-field":
        line += ",extra"
        says = "expected 5 fields, found 6"
    elif kind == "missing-field":
        line = line.rsplit(",", 1)[0]
        says = "expected 5 fields, found 4"
    return Breakage(kind, line, says)


@st.composite
def broken_directories(draw: st.DrawFn) -> tuple[str, list[tuple[int, Breakage]]]:
    count = draw(st.integers(2, 12))
    users = [f"UFZ{i:05d}" for i in range(count)]
    lines = [HEADER]
    for i, user in enumerate(users):
        # users[0], on line 2, is never broken: managers and duplicates may point at it.
        manager = draw(st.sampled_from(["", MANAGER, *users[:1][:i]]))
        name = csv_field(draw(NAMES))
        lines.append(f"{user},{user.lower()}@example.com,{name},{manager},Dept")
    positions = draw(st.sets(st.integers(3, count + 1), min_size=1, max_size=3))
    broken: list[tuple[int, Breakage]] = []
    for position in sorted(positions):
        breakage = draw(broken_rows(f"UFZB{position:04d}", users[0]))
        lines[position - 1] = breakage.row
        broken.append((position, breakage))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(lines) + newline, broken


def test_broken_directory_rows_are_refused_whole_with_their_line(runtime: Runtime) -> None:
    company.seed(runtime)
    before = every_row(runtime)

    @settings(SETTINGS, max_examples=60)
    @given(data=broken_directories())
    def property_(data: tuple[str, list[tuple[int, Breakage]]]) -> None:
        text, broken = data
        with pytest.raises(DirectoryError) as refused:
            import_directory(runtime, text, actor="fuzz")
        message = refused.value.message
        assert "nothing was imported" in message
        accused = {int(n) for n in re.findall(r"line (\d+):", message)}
        assert accused and accused <= {line for line, _ in broken}, message
        # Row problems are all reported at once; unknown managers are checked after them.
        must = [(n, b) for n, b in broken if b.kind != "unknown-manager"] or broken
        for line, breakage in must:
            assert f"line {line}:" in message, (breakage, message)
            assert breakage.says in message, (breakage, message)
        assert every_row(runtime) == before

    property_()


def test_a_nul_in_a_directory_row_is_refused_with_its_line(runtime: Runtime) -> None:
    company.seed(runtime)
    before = every_row(runtime)
    text = f"{HEADER}\nUFZ00001,a@example.com,Ann,,Eng\nUFZ00002,b@example.com,B\x00b,,Eng\n"
    try:
        import_directory(runtime, text, actor="fuzz")
    except DirectoryError as exc:
        assert "line 3" in exc.message
    except Exception as exc:  # any other error is the failure being pinned
        pytest.fail(f"{type(exc).__name__} instead of a DirectoryError")
    else:
        pytest.fail("accepted")
    assert every_row(runtime) == before


def test_an_unclosed_quote_is_refused_with_a_line(runtime: Runtime) -> None:
    company.seed(runtime)
    before = every_row(runtime)
    text = f'{HEADER}\nUFZ00001,a@example.com,"Ann,,Eng\nUFZ00002,b@example.com,Bob,,Eng\n'
    with pytest.raises(DirectoryError) as refused:
        import_directory(runtime, text, actor="fuzz")
    # csv reports where it ran out of input, not where the quote opened: at or after line 2.
    lines = [int(n) for n in re.findall(r"line (\d+)", refused.value.message)]
    assert lines and min(lines) >= 2
    assert every_row(runtime) == before


def catalog_products() -> list[dict[str, Any]]:
    data = yaml.safe_load(company.CATALOG)
    return list(data["products"])


CATALOG_BREAKAGES: dict[str, tuple[str, Any]] = {
    "negative-seats": ("seats", -1),
    "seats-a-string": ("seats", "many"),
    "seats-a-bool": ("seats", True),
    "seats-a-float": ("seats", 1.5),
    "bad-delivery": ("delivery", "email"),
    "bad-id": ("id", "Not A Slug"),
    "empty-name": ("name", ""),
    "name-a-list": ("name", ["a"]),
    "unknown-step": ("approval", ["it-tem"]),
    "unknown-role": ("approval", ["role:boss"]),
    "approval-a-string": ("approval", "manager"),
    "repeated-step": ("approval", ["manager", "manager"]),
    "cents": ("cost_per_seat", 1.999),
    "negative-cost": ("cost_per_seat", -1),
    "bad-date": ("renewal_date", "2027-13-01"),
    "zero-reclaim": ("reclaim_after_days", 0),
    "unknown-key": ("colour", "blue"),
    "auto-approve-a-string": ("auto_approve", "yes"),
}


@st.composite
def broken_catalogs(draw: st.DrawFn) -> tuple[str, int, str]:
    products = catalog_products()
    index = draw(st.integers(0, len(products) - 1))
    kind = draw(st.sampled_from(sorted(CATALOG_BREAKAGES)))
    key, value = CATALOG_BREAKAGES[kind]
    products[index] = {**products[index], key: value}
    if kind == "bad-date":
        products[index]["renewal_date"] = "2027-13-01"  # a string here; see the dump below
    data = {"groups": {"it-team": [IT1, company.IT2]}, "products": products}
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if kind == "bad-date":
        text = text.replace("'2027-13-01'", "2027-13-01")  # a YAML date, not a string
    return text, index, kind


def test_broken_catalogs_are_refused_whole_naming_the_product(runtime: Runtime) -> None:
    company.seed(runtime)
    before = every_row(runtime)

    @settings(SETTINGS, max_examples=40)
    @given(data=broken_catalogs())
    def property_(data: tuple[str, int, str]) -> None:
        text, index, _ = data
        with pytest.raises(CatalogError) as refused:
            load_catalog(runtime, text, actor="fuzz", source="catalog.yml")
        message = refused.value.message
        assert message.startswith("catalog.yml")
        assert f"products[{index}]" in message or re.search(r"line \d+", message), message
        assert every_row(runtime) == before

    property_()


@pytest.mark.parametrize(
    ("replace", "by"),
    [
        pytest.param("seats: 3", "seats: 1000000000000000000000", id="seats-beyond-64-bits"),
        pytest.param("seats: 3", "seats: 3000000000", id="seats-beyond-32-bits"),
        pytest.param(
            "reclaim_after_days: 30", "reclaim_after_days: 99999999999999999999", id="reclaim"
        ),
        pytest.param("name: Figma Professional", 'name: "Fig\\0ma"', id="nul-escape-in-name"),
    ],
)
def test_catalog_values_the_database_cannot_hold_are_refused(
    runtime: Runtime, replace: str, by: str
) -> None:
    company.seed(runtime)
    before = every_row(runtime)
    text = company.CATALOG.replace(replace, by, 1)
    try:
        load_catalog(runtime, text, actor="fuzz")
    except CatalogError:
        pass
    except Exception as exc:  # any other error is the failure being pinned
        pytest.fail(f"{type(exc).__name__} instead of a CatalogError")
    else:
        pytest.fail("accepted")
    assert every_row(runtime) == before


def test_a_catalog_error_names_its_line(runtime: Runtime) -> None:
    text = company.CATALOG.replace("    seats: 1\n", "    seats: -1\n", 1)
    line = text.splitlines().index("    seats: -1") + 1
    with pytest.raises(CatalogError) as refused:
        load_catalog(runtime, text, actor="fuzz")
    assert f"line {line}" in refused.value.message, refused.value.message
