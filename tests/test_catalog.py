"""Catalog: parsing and validation, loading in place, and the read side (seats, lookups)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import event
from sqlalchemy.exc import DataError
from sqlmodel import SQLModel, select

from bot.catalog import (
    MAX_RECLAIM_DAYS,
    MAX_SEATS,
    MAX_TEXT,
    get_product,
    list_products,
    load_catalog,
    parse_catalog,
    suggest,
)
from bot.cli import cli
from bot.errors import CatalogError, UnknownProduct
from bot.runtime import Runtime
from storage.models import Assignment, AuditEntry, GroupMember, LicenseKey, Product

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
    auto_approve: false
    reclaim_after_days: 30
  - id: zoom
    name: Zoom Workplace
    delivery: seat
    seats: 2
    cost_per_seat: 149.90
    approval: [manager, role:it_admin, U0BOSS001]
"""


def snapshot(rt: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove a refused load changed nothing."""
    with rt.db.read() as session:
        return {
            table.name: sorted(
                (tuple(map(str, row)) for row in session.connection().execute(table.select())),
            )
            for table in SQLModel.metadata.sorted_tables
        }


def line_of(text: str, needle: str) -> int:
    """The 1-based number of the one line of ``text`` that contains ``needle``."""
    found = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(found) == 1, (needle, found)
    return found[0]


def invoke(env: dict[str, str | None], *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


@pytest.fixture
def env(database_url: str, encryption_key: str) -> dict[str, str | None]:
    return {"DATABASE_URL": database_url, "LICENSEBOT_ENCRYPTION_KEYS": encryption_key}


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.yml"
    path.write_text(CATALOG, encoding="utf-8")
    return path


def products(rt: Runtime) -> dict[str, Product]:
    with rt.db.read() as session:
        return {p.id: p for p in session.exec(select(Product))}


# --- loading through the CLI -------------------------------------------------------------------


def test_load_creates_products_groups_and_one_audit_entry(
    runtime: Runtime, env: dict[str, str | None], catalog_file: Path
) -> None:
    result = invoke(env, "catalog", "load", str(catalog_file))

    assert result.exit_code == 0, result.output
    assert "2 added, 0 updated, 0 unchanged, 0 deactivated" in result.stdout
    stored = products(runtime)
    assert stored["intellij"].approval == ["manager", "it-team"]
    assert stored["intellij"].renewal_date == date(2027, 3, 1)
    assert stored["zoom"].cost_per_seat == Decimal("149.90")
    assert stored["zoom"].vendor == ""
    with runtime.db.read() as session:
        members = session.exec(select(GroupMember.group_name, GroupMember.user_id)).all()
        entries = session.exec(select(AuditEntry)).all()
    assert sorted(tuple(m) for m in members) == [("it-team", "U0IT00001"), ("it-team", "U0IT00002")]
    assert [e.action for e in entries] == ["catalog.loaded"]
    assert entries[0].actor.startswith("cli")
    assert '"added":["intellij","zoom"]' in entries[0].details


def test_reloading_the_same_file_changes_nothing(
    runtime: Runtime, env: dict[str, str | None], catalog_file: Path
) -> None:
    invoke(env, "catalog", "load", str(catalog_file))
    before = snapshot(runtime)

    result = invoke(env, "catalog", "load", str(catalog_file))

    assert result.exit_code == 0
    assert "0 added, 0 updated, 2 unchanged, 0 deactivated" in result.stdout
    after = snapshot(runtime)
    for table in ("product", "groupmember"):
        assert after[table] == before[table]


def test_products_left_out_are_deactivated_not_deleted_and_come_back(runtime: Runtime) -> None:
    load_catalog(runtime, CATALOG, actor="test")
    without_zoom = CATALOG.split("  - id: zoom")[0].replace("seats: 3", "seats: 5")

    result = load_catalog(runtime, without_zoom, actor="test")

    assert result.deactivated == ("zoom",)
    assert result.updated == ("intellij",)
    stored = products(runtime)
    assert stored["zoom"].active is False
    assert stored["intellij"].seats == 5
    assert [p.id for p in list_products(runtime)] == ["intellij"]
    assert [p.id for p in list_products(runtime, active_only=False)] == ["intellij", "zoom"]

    again = load_catalog(runtime, CATALOG, actor="test")

    assert again.added == ()
    assert set(again.updated) == {"intellij", "zoom"}
    assert products(runtime)["zoom"].active is True


def test_groups_are_replaced_not_merged(runtime: Runtime) -> None:
    load_catalog(runtime, CATALOG, actor="test")
    load_catalog(
        runtime,
        CATALOG.replace("it-team: [U0IT00001, U0IT00002]", "it-team: [U0IT00003]"),
        actor="test",
    )
    with runtime.db.read() as session:
        members = session.exec(select(GroupMember.user_id)).all()
    assert members == ["U0IT00003"]


def test_a_refused_load_leaves_every_table_as_it_was(
    runtime: Runtime, env: dict[str, str | None], catalog_file: Path, tmp_path: Path
) -> None:
    invoke(env, "catalog", "load", str(catalog_file))
    before = snapshot(runtime)
    bad = tmp_path / "bad.yml"
    # A valid first product and a new group, then a typo: nothing of it may be written.
    text = (
        CATALOG.replace("it-team: [U0IT00001, U0IT00002]", "it-team: [U0IT00009]\n  new: [UX1]")
        .replace("seats: 3", "seats: 4")
        .replace("role:it_admin", "it-tem")
    )
    bad.write_text(text, encoding="utf-8")

    result = invoke(env, "catalog", "load", str(bad))

    assert result.exit_code != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("licensebot: ")
    assert (
        f"{bad}: line {line_of(text, 'it-tem')}, products[1] (zoom): approval step 'it-tem' is "
        "not manager, a group, role:ROLE or a user ID" in result.stderr
    )
    assert snapshot(runtime) == before


def test_bad_yaml_names_the_line(env: dict[str, str | None], tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text("products:\n  - id: zoom\n    name: [unclosed\n", encoding="utf-8")

    result = invoke(env, "catalog", "load", str(path))

    assert result.exit_code == 1
    assert result.stderr.startswith(f"licensebot: {path}: line 4")
    assert "Traceback" not in result.output


def test_missing_file_is_one_clear_line(env: dict[str, str | None], tmp_path: Path) -> None:
    result = invoke(env, "catalog", "load", str(tmp_path / "nope.yml"))

    assert result.exit_code == 1
    assert (
        result.stderr
        == f"licensebot: {tmp_path / 'nope.yml'}: cannot read it (No such file or directory).\n"
    )


# --- validation (no database needed) -----------------------------------------------------------


def _with(product: str, groups: str = "it-team: [U0IT00001]") -> str:
    first = (
        "  - id: ok\n    name: Fine\n    delivery: seat\n    seats: 1\n    approval: [manager]\n"
    )
    return f"groups:\n  {groups}\nproducts:\n{first}{product}"


ZOOM = "  - id: zoom\n    name: Zoom\n    delivery: seat\n    seats: 1\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            _with(ZOOM + "    approval: [it-tem]\n"),
            "products[1] (zoom): approval step 'it-tem' is not manager, a group, role:ROLE or a "
            "user ID",
        ),
        (
            _with(ZOOM + "    approval: [role:boss]\n"),
            "products[1] (zoom): approval step 'role:boss' names an unknown role",
        ),
        (
            _with(ZOOM + "    approval: [manager]\n    colour: blue\n"),
            "products[1] (zoom): unknown key 'colour'",
        ),
        (
            _with(ZOOM.replace("seats: 1", "seats: -1") + "    approval: [manager]\n"),
            "products[1] (zoom): seats: Input should be greater than or equal to 0",
        ),
        (
            _with(ZOOM.replace("seats: 1", "seats: true") + "    approval: [manager]\n"),
            "products[1] (zoom): seats: Input should be a valid integer",
        ),
        (
            _with(ZOOM.replace("delivery: seat", "delivery: email") + "    approval: [manager]\n"),
            "products[1] (zoom): delivery: Input should be 'key' or 'seat'",
        ),
        (
            _with(ZOOM.replace("id: zoom", "id: Zoom App") + "    approval: [manager]\n"),
            "products[1] (Zoom App): id: 'Zoom App' is not allowed; an id must be lowercase",
        ),
        (
            _with(ZOOM.replace("id: zoom", "id: ok") + "    approval: [manager]\n"),
            "products[1] (ok): id 'ok' is already used by products[0]",
        ),
        (
            _with(ZOOM.replace("    name: Zoom\n", "") + "    approval: [manager]\n"),
            "products[1] (zoom): missing 'name'",
        ),
        (_with(ZOOM), "products[1] (zoom): approval is missing"),
        (
            _with(ZOOM + "    approval: [manager, manager]\n"),
            "products[1] (zoom): approval step 'manager' appears twice",
        ),
        (
            _with(ZOOM + "    cost_per_seat: 1.999\n    approval: [manager]\n"),
            "products[1] (zoom): cost_per_seat: Decimal input should have no more than 2 "
            "decimal places",
        ),
        (
            _with(ZOOM + "    approval: [manager]\n", groups="it-team: [bob]"),
            "groups.it-team: member 'bob' is not a Slack user ID",
        ),
        (
            _with(ZOOM + "    approval: [manager]\n", groups="IT Team: [U0IT00001]"),
            "groups.IT Team: a group name must be",
        ),
        (
            _with(ZOOM + "    renewal_date: 2027-13-01\n    approval: [manager]\n"),
            "catalog.yml: line 13, column 19: '2027-13-01' is not a valid date",
        ),
        (_with(ZOOM + "    seats: 2\n    approval: [manager]\n"), "key 'seats' appears twice"),
        ("products: []\nextra: 1\n", "top level: unknown key 'extra'"),
        ("groups: {}\n", "top level: missing 'products'"),
        ("", "is empty"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        ("products: [zoom]\n", "products[0] (zoom): must be a mapping (key: value), not str"),
    ],
    ids=[
        "typo-step",
        "unknown-role",
        "unknown-key",
        "negative-seats",
        "bool-seats",
        "bad-delivery",
        "bad-id",
        "duplicate-id",
        "missing-name",
        "empty-approval",
        "repeated-step",
        "cents",
        "bad-member",
        "bad-group-name",
        "bad-date",
        "repeated-key",
        "top-unknown",
        "no-products",
        "empty",
        "not-mapping",
        "product-not-mapping",
    ],
)
def test_invalid_catalogs_are_refused_with_a_message_naming_the_problem(
    text: str, expected: str
) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, "catalog.yml")
    assert expected in caught.value.message
    assert caught.value.message.startswith("catalog.yml")


def test_every_problem_is_reported_at_once() -> None:
    text = _with(ZOOM + "    approval: [it-tem, role:boss]\n", groups="it-team: [bob]")
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, "c.yml")
    message = caught.value.message
    assert "'it-tem'" in message and "'role:boss'" in message and "'bob'" in message
    assert "\n" not in message


def test_defaults_and_types_of_a_minimal_product() -> None:
    parsed = parse_catalog(
        "products:\n  - {id: tool, name: Tool, delivery: seat, seats: 0, auto_approve: true}\n"
    )
    spec = parsed.products[0]
    assert spec.cost_per_seat == Decimal(0)
    assert spec.reclaim_after_days == 30
    assert spec.approval is None  # not given; auto_approve decides
    assert spec.renewal_date is None


# --- line numbers, bounds and control characters -------------------------------------------


ZOOM_AT = CATALOG.index("  - id: zoom")


def _zoom(old: str, new: str) -> str:
    """CATALOG with ``old`` replaced by ``new`` in the zoom product (products[1]) only."""
    return CATALOG[:ZOOM_AT] + CATALOG[ZOOM_AT:].replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "needle", "expected"),
    [
        (
            _zoom("role:it_admin", "it-tem"),
            "it-tem",
            "products[1] (zoom): approval step 'it-tem' is not manager, a group",
        ),
        (
            _zoom(
                "approval: [manager, role:it_admin, U0BOSS001]",
                "approval:\n      - manager\n      - U0BOSS001\n      - role:boss  # here",
            ),
            "# here",
            "products[1] (zoom): approval step 'role:boss' names an unknown role",
        ),
        (
            _zoom(
                "approval: [manager, role:it_admin, U0BOSS001]",
                "approval:\n      - manager\n      - U0BOSS001\n      - manager  # here",
            ),
            "# here",
            "products[1] (zoom): approval step 'manager' appears twice",
        ),
        (
            _zoom("id: zoom", "id: intellij  # here"),
            "# here",
            "products[1] (intellij): id 'intellij' is already used by products[0]",
        ),
        (
            _zoom("delivery: seat", "delivery: email"),
            "delivery: email",
            "products[1] (zoom): delivery: Input should be 'key' or 'seat'",
        ),
        (
            _zoom("seats: 2", "seats: 1000001"),
            "seats: 1000001",
            "products[1] (zoom): seats: Input should be less than or equal to 1000000",
        ),
        (
            _zoom("seats: 2", "seats: 2\n    reclaim_after_days: 3651"),
            "reclaim_after_days: 3651",
            "products[1] (zoom): reclaim_after_days: Input should be less than or equal to 3650",
        ),
        (
            _zoom("name: Zoom Workplace", 'name: "Zoom\\0Workplace"'),
            "Zoom\\0Workplace",
            "products[1] (zoom): name: contains a control character (U+0000) at character 5",
        ),
        (
            _zoom("name: Zoom Workplace", "name: Zoom Workplace\n    colour: blue"),
            "colour",
            "products[1] (zoom): unknown key 'colour'",
        ),
        (
            _zoom("    delivery: seat\n", ""),
            "  - id: zoom",  # a missing key: the product's own line, where it belongs
            "products[1] (zoom): missing 'delivery'",
        ),
        (
            _zoom("    approval: [manager, role:it_admin, U0BOSS001]\n", ""),
            "  - id: zoom",
            "products[1] (zoom): approval is missing",
        ),
        (
            CATALOG.replace("U0IT00002]", "U0IT00002]\n  bad-group:\n    - U0IT00003\n    - bob"),
            "- bob",
            "groups.bad-group: member 'bob' is not a Slack user ID",
        ),
        (
            CATALOG.replace("it-team: [", '"it\\x1bteam": ['),
            "it\\x1bteam",
            "groups.it\\x1bteam: the group name contains a control character (U+001B)",
        ),
    ],
    ids=[
        "unknown-step",
        "unknown-role-in-block-list",
        "repeated-step-in-block-list",
        "duplicate-id",
        "bad-delivery",
        "seats-out-of-range",
        "reclaim-out-of-range",
        "nul-in-name",
        "unknown-key",
        "missing-key",
        "missing-approval",
        "bad-member",
        "escape-in-group-name",
    ],
)
def test_every_error_names_the_line_it_is_about(text: str, needle: str, expected: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, "catalog.yml")

    assert f"line {line_of(text, needle)}, {expected}" in caught.value.message


def test_problems_are_listed_in_the_order_of_the_file() -> None:
    # Written before seats, though the model declares seats first (pydantic's order).
    text = _zoom("    delivery: seat\n    seats: 2\n", "    reclaim_after_days: 0\n    seats: -1\n")

    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, "catalog.yml")

    message = caught.value.message
    reclaim, seats = line_of(text, "reclaim_after_days: 0"), line_of(text, "seats: -1")
    assert reclaim < seats
    assert message.index(f"line {reclaim}, ") < message.index(f"line {seats}, ")
    assert "products[1] (zoom): missing 'delivery'" in message


def test_a_long_list_of_problems_is_capped_and_stays_on_one_line() -> None:
    products = "".join(
        f"  - {{id: p{i}, name: P, delivery: seat, seats: -1, approval: []}}\n" for i in range(25)
    )

    with pytest.raises(CatalogError) as caught:
        parse_catalog(f"products:\n{products}", "catalog.yml")

    message = caught.value.message
    assert "\n" not in message
    assert message.endswith("; and 5 more (nothing was loaded)")
    assert [int(n) for n in re.findall(r"line (\d+), ", message)] == list(range(2, 22))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "name: Zoom Workplace",
            'name: "Zo\\x85om"',
            "name: contains a control character (U+0085)",
        ),
        (
            "name: Zoom Workplace",
            'name: "Zoom\\x7f"',
            "name: contains a control character (U+007F)",
        ),
        (
            "name: Zoom Workplace",
            'name: "Zoom\\tWork"',
            "name: contains a control character (U+0009)",
        ),
        ("name: Zoom Workplace", 'name: "Zoom\\ud800"', "name: contains a lone surrogate (U+D800)"),
        ("delivery: seat", 'vendor: "Zo\\0om"\n    delivery: seat', "vendor: contains a control"),
        ("id: zoom", 'id: "zo\\0om"', "products[1] (zo\\x00om): id: contains a control character"),
        ("role:it_admin", '"role:it_admin\\0"', "approval[1]: contains a control character"),
        ("U0BOSS001", '"U0BOSS\\u009b"', "approval[2]: contains a control character (U+009B)"),
    ],
    ids=["c1-nel", "del", "tab", "surrogate", "vendor", "id", "step", "c1-csi"],
)
def test_control_characters_are_refused_in_every_text_field(
    old: str, new: str, expected: str
) -> None:
    text = _zoom(old, new)

    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, "catalog.yml")

    assert f"line {line_of(text, new.splitlines()[0])}, " in caught.value.message
    assert expected in caught.value.message


def test_surrounding_whitespace_is_trimmed_not_refused() -> None:
    text = _zoom("name: Zoom Workplace", 'name: "\\tZoom Workplace\\n"')
    assert parse_catalog(text).products[1].name == "Zoom Workplace"
    with pytest.raises(CatalogError, match=r"products\[1\] \(zoom\): name: is empty"):
        parse_catalog(_zoom("name: Zoom Workplace", 'name: " \\t "'), "catalog.yml")


def test_a_raw_control_character_in_the_file_names_its_line_and_column() -> None:
    text = _zoom("name: Zoom Workplace", "name: Zoom\x07Workplace")

    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, "catalog.yml")

    assert caught.value.message.startswith(
        f"catalog.yml: line {line_of(text, 'Zoom')}, column 15: character U+0007 cannot appear"
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("seats: 2", "seats: -1", "greater than or equal to 0"),
        ("seats: 2", f"seats: {MAX_SEATS + 1}", f"less than or equal to {MAX_SEATS}"),
        ("seats: 2", "seats: 1000000000000000000000", f"less than or equal to {MAX_SEATS}"),
        ("seats: 2", "seats: 2\n    reclaim_after_days: 0", "greater than or equal to 1"),
        (
            "seats: 2",
            f"seats: 2\n    reclaim_after_days: {MAX_RECLAIM_DAYS + 1}",
            f"less than or equal to {MAX_RECLAIM_DAYS}",
        ),
        ("cost_per_seat: 149.90", "cost_per_seat: -0.01", "greater than or equal to 0"),
        ("cost_per_seat: 149.90", "cost_per_seat: 10000000000", "less than 10000000000"),
        ("cost_per_seat: 149.90", "cost_per_seat: 1e30", "less than 10000000000"),
        ("cost_per_seat: 149.90", "cost_per_seat: .nan", "finite number"),
        ("cost_per_seat: 149.90", "cost_per_seat: 0.001", "no more than 2 decimal places"),
        ("name: Zoom Workplace", f"name: {'z' * (MAX_TEXT + 1)}", "201 characters long; at most"),
        ("delivery: seat", f"delivery: seat\n    vendor: {'v' * 500}", "500 characters long"),
        ("id: zoom", f"id: {'z' * 65}", "an id must be lowercase letters"),
    ],
    ids=[
        "seats-negative",
        "seats-over",
        "seats-beyond-64-bits",
        "reclaim-zero",
        "reclaim-over",
        "cost-negative",
        "cost-over",
        "cost-huge-float",
        "cost-nan",
        "cost-fraction-of-a-cent",
        "name-too-long",
        "vendor-too-long",
        "id-too-long",
    ],
)
def test_values_outside_the_bounds_are_refused(old: str, new: str, expected: str) -> None:
    text = _zoom(old, new)

    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, "catalog.yml")

    message = caught.value.message
    assert f"line {line_of(text, new.splitlines()[-1].strip())}, products[1] " in message
    assert expected in message
    assert len(message) < 400  # a long value is quoted cut short, not whole


def test_values_at_the_bounds_are_stored_as_written(runtime: Runtime) -> None:
    text = (
        _zoom("seats: 2", f"seats: {MAX_SEATS}\n    reclaim_after_days: {MAX_RECLAIM_DAYS}")
        .replace("cost_per_seat: 149.90", "cost_per_seat: 9999999999.99")
        .replace("name: Zoom Workplace", f"name: {'Z' * MAX_TEXT}")
    )

    load_catalog(runtime, text, actor="test")

    zoom = products(runtime)["zoom"]
    assert (zoom.seats, zoom.reclaim_after_days) == (MAX_SEATS, MAX_RECLAIM_DAYS)
    assert zoom.cost_per_seat == Decimal("9999999999.99")
    assert zoom.name == "Z" * MAX_TEXT


# Each would reach the database without the checks: PostgreSQL raises a DataError (32-bit
# INTEGER, NUMERIC(12, 2), NUL in text), psycopg a UnicodeEncodeError (surrogate), SQLite an
# OverflowError past 64 bits, or stores it. All must be a CatalogError with the line instead.
UNSTORABLE = [
    pytest.param(
        "seats: 3", "seats: 3000000000", "less than or equal to", id="seats-beyond-32-bits"
    ),
    pytest.param(
        "seats: 3",
        "seats: 100000000000000000000",
        "less than or equal to",
        id="seats-beyond-64-bits",
    ),
    pytest.param(
        "reclaim_after_days: 30", "reclaim_after_days: 9999999999", "less than", id="reclaim"
    ),
    pytest.param(
        "cost_per_seat: 599", "cost_per_seat: 123456789012.5", "less than", id="cost-beyond-numeric"
    ),
    pytest.param(
        "name: JetBrains IntelliJ IDEA Ultimate",
        'name: "Jet\\0Brains"',
        "name: contains a control character (U+0000)",
        id="nul-in-name",
    ),
    pytest.param(
        "vendor: JetBrains",
        'vendor: "Jet\\udc80Brains"',
        "vendor: contains a lone surrogate (U+DC80)",
        id="surrogate-in-vendor",
    ),
    pytest.param(
        "approval: [manager, it-team]",
        'approval: ["\\0"]',
        "approval[0]: contains a control character",
        id="nul-in-step",
    ),
    pytest.param(
        "U0IT00002]", '"U0IT\\00002"]', "contains a control character", id="nul-in-member"
    ),
    pytest.param(
        "  it-team:",
        '  "it\\0team":',
        "the group name contains a control character",
        id="nul-in-group-name",
    ),
    pytest.param("id: intellij", f"id: {'i' * 65}", "an id must be", id="id-beyond-64"),
    pytest.param("U0IT00002]", f"U{'A' * 40}]", "is not a Slack user ID", id="member-beyond-32"),
    pytest.param("  it-team:", f"  {'g' * 65}:", "a group name must be", id="group-name-beyond-64"),
]


@pytest.mark.parametrize(("old", "new", "says"), UNSTORABLE)
def test_values_the_database_cannot_hold_are_refused_with_their_line_and_change_nothing(
    runtime: Runtime, old: str, new: str, says: str
) -> None:
    load_catalog(runtime, CATALOG, actor="test")
    before = snapshot(runtime)
    text = CATALOG.replace(old, new, 1)
    assert text != CATALOG

    # pytest.raises lets anything else through: a DataError here fails the test.
    with pytest.raises(CatalogError) as caught:
        load_catalog(runtime, text, actor="test", source="catalog.yml")

    assert f"catalog.yml: line {line_of(text, new.strip())}, " in caught.value.message
    assert says in caught.value.message
    assert snapshot(runtime) == before


def test_postgresql_would_raise_a_data_error_for_them(runtime: Runtime, database_url: str) -> None:
    """The premise of the test above: these values do fail in the database, without the checks."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite stores NUL and 64-bit integers; the premise is PostgreSQL's")
    now = runtime.clock.now()
    for product in (
        Product(id="p", name="P", delivery="seat", seats=3_000_000_000, updated_at=now),
        Product(id="p", name="Jet\x00Brains", delivery="seat", updated_at=now),
    ):
        with pytest.raises(DataError), runtime.db.transaction() as session:
            session.add(product)


# --- the read side -----------------------------------------------------------------------------


@pytest.fixture
def loaded(runtime: Runtime) -> Runtime:
    load_catalog(runtime, CATALOG, actor="test")
    return runtime


def _add_keys(rt: Runtime, product_id: str, count: int) -> list[int]:
    with rt.db.transaction() as session:
        rows = [
            LicenseKey(
                product_id=product_id, ciphertext=rt.vault.seal(f"K{i}"), imported_at=rt.clock.now()
            )
            for i in range(count)
        ]
        session.add_all(rows)
        session.flush()
        return [r.id for r in rows if r.id is not None]


def _assign(rt: Runtime, product_id: str, user: str, key_id: int | None = None) -> int:
    with rt.db.transaction() as session:
        row = Assignment(
            product_id=product_id, user_id=user, key_id=key_id, assigned_at=rt.clock.now()
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


@pytest.fixture
def statements(loaded: Runtime) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(loaded.db.engine, "before_cursor_execute", record)
    yield seen
    event.remove(loaded.db.engine, "before_cursor_execute", record)


def test_seats_taken_and_left_for_seat_and_key_products(
    loaded: Runtime, statements: list[str]
) -> None:
    key_ids = _add_keys(loaded, "intellij", 4)
    first = _assign(loaded, "intellij", "UA0000001", key_ids[0])
    for user in ("UB0000001", "UB0000002", "UB0000003"):  # one more than the 2 seats bought
        _assign(loaded, "zoom", user)
    statements.clear()

    info = {p.id: p for p in list_products(loaded)}

    # Aggregated in SQL: one query however many products, keys and assignments there are.
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
    assert (info["intellij"].seats_taken, info["intellij"].seats_left) == (1, 2)
    assert (info["zoom"].seats_taken, info["zoom"].seats_left) == (3, 0)
    assert info["zoom"].cost_per_seat == Decimal("149.90")
    assert info["intellij"].approval == ("manager", "it-team")

    with loaded.db.transaction() as session:
        row = session.get(Assignment, first)
        assert row is not None
        row.released_at = loaded.clock.now() + timedelta(days=1)
        session.add(row)

    intellij = get_product(loaded, "intellij")
    # The released seat is free again, but its key was handed out: 3 keys remain for 3 seats.
    assert (intellij.seats_taken, intellij.seats_left) == (0, 3)


def test_key_products_are_limited_by_keys_in_stock(loaded: Runtime) -> None:
    assert get_product(loaded, "intellij").seats_left == 0
    _add_keys(loaded, "intellij", 1)
    assert get_product(loaded, "intellij").seats_left == 1


def test_get_product_by_id_any_case_or_exact_name(loaded: Runtime) -> None:
    assert get_product(loaded, "IntelliJ").id == "intellij"
    assert get_product(loaded, " zoom workplace ").id == "zoom"


def test_unknown_product_suggests_close_ids_and_names(loaded: Runtime) -> None:
    with pytest.raises(UnknownProduct) as caught:
        get_product(loaded, "intelij")
    assert caught.value.suggestions == ["intellij"]
    assert "Did you mean: intellij?" in caught.value.message

    assert suggest(loaded, "Zoom Workplac") == ["zoom"]
    assert suggest(loaded, "idea") == ["intellij"]
    assert suggest(loaded, "photoshop") == []


def test_inactive_products_are_hidden_unless_asked_for(loaded: Runtime) -> None:
    load_catalog(loaded, CATALOG.split("  - id: zoom")[0], actor="test")
    with pytest.raises(UnknownProduct):
        get_product(loaded, "zoom")
    assert get_product(loaded, "zoom", active_only=False).active is False
    assert "zoom" not in suggest(loaded, "zoom")


def test_a_failure_after_writing_began_rolls_everything_back(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_catalog(runtime, CATALOG, actor="test")
    before = snapshot(runtime)

    def fail(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("disk full")

    # The audit entry is written last, after the products and groups have been changed.
    monkeypatch.setattr("bot.catalog.audit.append", fail)
    with pytest.raises(RuntimeError):
        load_catalog(runtime, CATALOG.split("  - id: zoom")[0], actor="t")
    assert snapshot(runtime) == before


def test_reclaim_fields_are_loaded_with_their_defaults(runtime: Runtime) -> None:
    text = (
        "products:\n"
        "  - {id: a, name: A, delivery: seat, seats: 2, approval: [],"
        " reclaim_grace_days: 3, auto_reclaim: true, min_free_seats: 1}\n"
        "  - {id: b, name: B, delivery: seat, seats: 2, approval: []}\n"
    )
    load_catalog(runtime, text, actor="test")
    a, b = list_products(runtime)
    assert (a.reclaim_grace_days, a.auto_reclaim, a.min_free_seats) == (3, True, 1)
    assert (b.reclaim_grace_days, b.auto_reclaim, b.min_free_seats) == (7, False, 0)


# --- time-limited grants, provisioning webhooks, usage sources ---------------------------------

_WITH = "seats: 2"


@pytest.mark.parametrize(
    ("text", "needle", "expected"),
    [
        (_zoom(_WITH, f"{_WITH}\n    max_days: 0"), "max_days", "greater than or equal to 1"),
        (
            _zoom(_WITH, f"{_WITH}\n    max_days: {MAX_RECLAIM_DAYS + 1}"),
            "max_days",
            f"less than or equal to {MAX_RECLAIM_DAYS}",
        ),
        (_zoom(_WITH, f"{_WITH}\n    max_days: 1.5"), "max_days", "valid integer"),
        (_zoom(_WITH, f"{_WITH}\n    max_days: '10'"), "max_days", "valid integer"),
        (
            CATALOG.replace(
                "reclaim_after_days: 30",
                "reclaim_after_days: 30\n    provision_webhook: https://idp.example.com/hook",
            ),
            "- id: intellij",
            "provision_webhook is for delivery: seat products",
        ),
        (
            _zoom(_WITH, f"{_WITH}\n    provision_webhook: ftp://idp.example.com/hook"),
            "provision_webhook",
            "is not an http(s) URL",
        ),
        (
            _zoom(_WITH, f"{_WITH}\n    provision_webhook: 'javascript:alert(1)'"),
            "provision_webhook",
            "is not an http(s) URL",
        ),
        (_zoom(_WITH, f"{_WITH}\n    provision_webhook: https://"), "provision_webhook", "URL"),
        (
            _zoom(_WITH, f"{_WITH}\n    provision_webhook: https://idp.example.com/a b"),
            "provision_webhook",
            "is not an http(s) URL",
        ),
        (_zoom(_WITH, f"{_WITH}\n    usage_source: okta"), "usage_source", "CONNECTOR:APP_ID"),
        (_zoom(_WITH, f"{_WITH}\n    usage_source: 'okta:'"), "usage_source", "CONNECTOR:APP_ID"),
        (
            _zoom(_WITH, f"{_WITH}\n    usage_source: 'Okta:0oa1'"),
            "usage_source",
            "CONNECTOR:APP_ID",
        ),
        (_zoom(_WITH, f"{_WITH}\n    usage_source: okta:a b"), "usage_source", "CONNECTOR:APP_ID"),
        (_zoom(_WITH, f"{_WITH}\n    usage_source: 12"), "usage_source", "valid string"),
    ],
    ids=[
        "max-days-zero",
        "max-days-over",
        "max-days-fraction",
        "max-days-text",
        "webhook-on-a-key-product",
        "webhook-ftp",
        "webhook-javascript",
        "webhook-no-host",
        "webhook-space",
        "usage-source-no-app",
        "usage-source-empty-app",
        "usage-source-uppercase-connector",
        "usage-source-space",
        "usage-source-number",
    ],
)
def test_bad_grant_webhook_and_usage_fields_are_refused_by_line_and_load_nothing(
    runtime: Runtime, text: str, needle: str, expected: str
) -> None:
    before = snapshot(runtime)
    with pytest.raises(CatalogError) as caught:
        load_catalog(runtime, text, actor="test", source="catalog.yml")
    message = caught.value.message
    assert message.startswith(f"catalog.yml: line {line_of(text, needle)}, products[")
    assert expected in message and "nothing was loaded" in message
    assert snapshot(runtime) == before


def test_grant_webhook_and_usage_fields_are_stored_as_written(runtime: Runtime) -> None:
    text = _zoom(
        _WITH,
        f"{_WITH}\n    max_days: {MAX_RECLAIM_DAYS}\n"
        "    provision_webhook: http://idp.internal:8080/licensebot?tenant=7\n"
        "    usage_source: okta:0oa1gjh63g214q0Hq0g4",
    ).replace("reclaim_after_days: 30", "reclaim_after_days: 30\n    max_days: 1")
    load_catalog(runtime, text, actor="test")
    stored = products(runtime)
    assert stored["intellij"].max_days == 1
    assert stored["intellij"].provision_webhook is None and stored["intellij"].usage_source is None
    zoom = stored["zoom"]
    assert zoom.max_days == MAX_RECLAIM_DAYS
    assert zoom.provision_webhook == "http://idp.internal:8080/licensebot?tenant=7"
    assert zoom.usage_source == "okta:0oa1gjh63g214q0Hq0g4"
