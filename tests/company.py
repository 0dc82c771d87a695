"""A small sample company used by the flow tests: catalog, directory, keys."""

from __future__ import annotations

from bot import catalog, directory, keys
from bot.runtime import Runtime

EMPLOYEE = "UEMP00001"
MANAGER = "UMGR00001"
IT1 = "U0IT00001"
IT2 = "U0IT00002"
ADMIN = "UADMIN1"  # it_admin through LICENSEBOT_ADMINS in the test runtime
NEWHIRE = "UNEW00001"
ORPHAN = "UORPHAN01"  # nobody's report: no manager in the directory
OUTSIDER = "UOUT00001"

CATALOG = """
groups:
  it-team: [U0IT00001, U0IT00002]
products:
  - id: intellij
    name: JetBrains IntelliJ IDEA Ultimate
    vendor: JetBrains
    delivery: key
    seats: 3
    cost_per_seat: 599
    renewal_date: 2027-03-01
    approval: [manager, it-team]
    reclaim_after_days: 30
  - id: figma
    name: Figma Professional
    vendor: Figma
    delivery: seat
    seats: 1
    cost_per_seat: 144
    approval: [manager]
  - id: slack-huddles
    name: Zoom Workplace
    vendor: Zoom
    delivery: seat
    seats: 50
    cost_per_seat: 0
    approval: []
  - id: sublime
    name: Sublime Text
    vendor: Sublime HQ
    delivery: key
    seats: 5
    cost_per_seat: 99
    approval: [role:it_admin]
"""

DIRECTORY = f"""slack_user_id,email,name,manager_slack_user_id,department
{MANAGER},mgr@example.com,Maria Manager,,Engineering
{EMPLOYEE},emp@example.com,Erik Employee,{MANAGER},Engineering
{NEWHIRE},new@example.com,Nina Newhire,{MANAGER},Engineering
{ORPHAN},orphan@example.com,Otto Orphan,,Sales
{IT1},it1@example.com,Ines IT,,IT
{IT2},it2@example.com,Ivan IT,,IT
"""

INTELLIJ_KEYS = ["IJ-AAAA-1111-SECRET-KEY-0001", "IJ-BBBB-2222-SECRET-KEY-0002"]
SUBLIME_KEYS = ["SUBL-9999-SECRET-KEY-0001"]


def seed(rt: Runtime, *, with_keys: bool = True) -> None:
    catalog.load_catalog(rt, CATALOG, actor="test")
    directory.import_directory(rt, DIRECTORY, actor="test")
    if with_keys:
        keys.import_keys(rt, "intellij", INTELLIJ_KEYS, actor="test")
        keys.import_keys(rt, "sublime", SUBLIME_KEYS, actor="test")
