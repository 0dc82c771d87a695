"""The demo's sample company, loaded through the same services as ``licensebot`` admin commands.

Everything goes in as an IT admin would put it in with the CLI (catalog load, directory import,
keys import, seats import, usage import, roles grant), dated relative to the demo clock so that
some seats are idle today: the reclaim job has someone to nudge and the digest has idle cost
to report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot import catalog, directory, keys, roles, seats, usage
from bot.runtime import Runtime
from bot.slacksim import SlackSim

# Who the audit log names for the seed.
ACTOR = "licensebot-demo"

EMPLOYEE = "U0DEMOEMP"
MANAGER = "U0DEMOMGR"
IT_ADMIN = "U0DEMOIT1"
IT_ADMIN_2 = "U0DEMOIT2"
AUDITOR = "U0DEMOAUD"
IT_CHANNEL = "C0DEMOIT1"
IT_CHANNEL_NAME = "it-licenses"
BOT_USER = "U0DEMOBOT"


@dataclass(frozen=True)
class Person:
    user_id: str
    name: str
    handle: str
    department: str
    manager: str | None = None


@dataclass(frozen=True)
class Persona:
    """Someone the demo page lets you be."""

    key: str
    user_id: str
    name: str
    title: str


PERSONAS: tuple[Persona, ...] = (
    Persona("employee", EMPLOYEE, "Emma Novak", "Employee"),
    Persona("manager", MANAGER, "Marcus Lee", "Engineering manager"),
    Persona("it", IT_ADMIN, "Ines Ortiz", "IT admin"),
    Persona("auditor", AUDITOR, "Aiko Tanaka", "Auditor"),
)

PEOPLE: tuple[Person, ...] = (
    Person(MANAGER, "Marcus Lee", "marcus", "Engineering"),
    Person(EMPLOYEE, "Emma Novak", "emma", "Engineering", MANAGER),
    Person(IT_ADMIN, "Ines Ortiz", "ines", "IT"),
    Person(IT_ADMIN_2, "Ivan Petrov", "ivan", "IT"),
    Person(AUDITOR, "Aiko Tanaka", "aiko", "Finance"),
    # Colleagues who already hold seats (not personas): their seats fill the reports.
    Person("U0DEMOE01", "Noah Fischer", "noah", "Engineering", MANAGER),
    Person("U0DEMOE02", "Priya Shah", "priya", "Engineering", MANAGER),
    Person("U0DEMOE03", "Lea Moreau", "lea", "Design", MANAGER),
    Person("U0DEMOE04", "Sam Okafor", "sam", "Marketing", MANAGER),
)

# Made-up keys in the vendors' shapes; the pools the bot hands out from.
INTELLIJ_KEYS = (
    "IJ-DEMO-4F7K-9QX2-M3TA",
    "IJ-DEMO-8HB2-K5WN-R7PE",
    "IJ-DEMO-2ZC9-T4LJ-V6DU",
    "IJ-DEMO-6MN3-Y8QF-B2XK",
)
SUBLIME_KEYS = ("SUBL-DEMO-51C7-93AF-0E2B", "SUBL-DEMO-7D04-1B8E-C6F9")

EMAIL_DOMAIN = "example.com"


def _catalog(today: datetime) -> str:
    """The catalog file; renewal dates fall within the digest's 60-day horizon."""

    def soon(days: int) -> str:
        return (today + timedelta(days=days)).date().isoformat()

    return f"""
groups:
  it-team: [{IT_ADMIN}, {IT_ADMIN_2}]
products:
  - id: intellij
    name: JetBrains IntelliJ IDEA Ultimate
    vendor: JetBrains
    delivery: key
    seats: 10
    cost_per_seat: 599
    renewal_date: {soon(45)}
    approval: [manager, it-team]
    reclaim_after_days: 30
  - id: figma
    name: Figma Professional
    vendor: Figma
    delivery: seat
    seats: 3
    cost_per_seat: 180
    renewal_date: {soon(25)}
    approval: [manager]
    reclaim_after_days: 30
  - id: adobe-cc
    name: Adobe Creative Cloud
    vendor: Adobe
    delivery: seat
    seats: 5
    cost_per_seat: 840
    renewal_date: {soon(150)}
    # The budget owner (Finance) signs off last on the expensive one.
    approval: [manager, it-team, {AUDITOR}]
    reclaim_after_days: 30
    reclaim_grace_days: 3
    auto_reclaim: true
  - id: zoom
    name: Zoom Workplace
    vendor: Zoom
    delivery: seat
    seats: 50
    cost_per_seat: 160
    approval: []
    reclaim_after_days: 30
  - id: sublime
    name: Sublime Text
    vendor: Sublime HQ
    delivery: key
    seats: 5
    cost_per_seat: 99
    approval: [role:it_admin]
"""


def _directory() -> str:
    lines = ["slack_user_id,email,name,manager_slack_user_id,department"]
    for p in PEOPLE:
        lines.append(
            f"{p.user_id},{p.handle}@{EMAIL_DOMAIN},{p.name},{p.manager or ''},{p.department}"
        )
    return "\n".join(lines) + "\n"


# (product, holder, assigned days ago, last used days ago, key held). Idle after 30 days:
# Emma's Zoom, Marcus's and Sam's Adobe, Sam's Figma and Priya's IntelliJ.
_SEATS: tuple[tuple[str, str, int, int, str], ...] = (
    ("figma", "U0DEMOE03", 200, 1, ""),
    ("figma", "U0DEMOE04", 150, 40, ""),  # Figma: 2 of 3 taken, one seat left
    ("adobe-cc", "U0DEMOE03", 300, 2, ""),
    ("adobe-cc", "U0DEMOE04", 240, 75, ""),
    ("adobe-cc", MANAGER, 180, 45, ""),
    ("zoom", EMPLOYEE, 120, 50, ""),
    ("zoom", MANAGER, 300, 1, ""),
    ("zoom", IT_ADMIN, 300, 1, ""),
    ("zoom", "U0DEMOE01", 90, 3, ""),
    ("intellij", "U0DEMOE01", 200, 1, "IJ-DEMO-1A2B-3C4D-5E6F"),
    ("intellij", "U0DEMOE02", 160, 60, "IJ-DEMO-7G8H-9J0K-1L2M"),
    ("sublime", IT_ADMIN, 400, 2, "SUBL-DEMO-0A9B-8C7D-6E5F"),
)


def _at(now: datetime, days_ago: int) -> str:
    return (now - timedelta(days=days_ago)).isoformat(timespec="seconds")


def seed(rt: Runtime) -> None:
    """Load the sample company into an empty database (the runner's side file)."""
    now = rt.clock.now()
    catalog.load_catalog(rt, _catalog(now), actor=ACTOR, source="demo catalog")
    directory.import_directory(rt, _directory(), actor=ACTOR, source="demo directory")
    keys.import_keys(rt, "intellij", INTELLIJ_KEYS, actor=ACTOR)
    keys.import_keys(rt, "sublime", SUBLIME_KEYS, actor=ACTOR)
    seat_lines = ["product_id,slack_user_id,assigned_at,key"]
    usage_lines = ["product_id,slack_user_id,last_used_at"]
    for product, holder, assigned, used, key in _SEATS:
        seat_lines.append(f"{product},{holder},{_at(now, assigned)},{key}")
        usage_lines.append(f"{product},{holder},{_at(now, used)}")
    seats.import_seats(rt, "\n".join(seat_lines) + "\n", actor=ACTOR, source="demo seats")
    rows = usage.parse_csv("\n".join(usage_lines) + "\n", "demo usage")
    usage.record_usage(rt, rows, source="csv", actor=ACTOR, label="demo usage")
    for user_id, role in ((IT_ADMIN, "it_admin"), (IT_ADMIN_2, "it_admin"), (AUDITOR, "auditor")):
        roles.grant(rt, user_id, role, actor=ACTOR)


def add_to_slack(sim: SlackSim) -> None:
    """The same people in the local Slack's directory, and the IT channel with its members
    (the IT admins, the auditor and the bot, which posts there)."""
    for p in PEOPLE:
        sim.add_user(p.user_id, name=p.handle, real_name=p.name, email=f"{p.handle}@{EMAIL_DOMAIN}")
    sim.add_channel(
        IT_CHANNEL,
        name=IT_CHANNEL_NAME,
        members=[IT_ADMIN, IT_ADMIN_2, AUDITOR, sim.bot_user_id],
    )
