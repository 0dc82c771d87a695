"""Free keys: a key is handed out once, and the free ones are found without walking past the
keys already given (``license_key.handed_out_at``, schema 0010)."""

from __future__ import annotations

from alembic import command
from sqlmodel import col, select

from bot import catalog, delivery
from bot.runtime import Runtime
from bot.seats import import_seats
from storage.db import alembic_config
from storage.models import Assignment, LicenseKey
from tests import company
from tests.company import EMPLOYEE, MANAGER


def _keys(rt: Runtime) -> list[LicenseKey]:
    with rt.db.read() as session:
        return list(
            session.exec(
                select(LicenseKey)
                .where(LicenseKey.product_id == "intellij")
                .order_by(col(LicenseKey.id))
            ).all()
        )


def _free(rt: Runtime) -> tuple[int | None, int]:
    """The next key to hand out, and the seats left (3 seats: the free keys are fewer)."""
    with rt.db.read() as session:
        first = delivery.free_key_id(session, "intellij")
    return first, catalog.get_product(rt, "intellij").seats_left


def test_a_key_given_by_a_seats_import_is_never_handed_out_again(runtime: Runtime) -> None:
    company.seed(runtime)
    pool = _keys(runtime)
    first_secret = company.INTELLIJ_KEYS[0]
    assert _free(runtime) == (pool[0].id, len(pool))

    import_seats(
        runtime,
        f"product_id,slack_user_id,assigned_at,key\nintellij,{EMPLOYEE},2026-02-01,{first_secret}\n",
        actor="test",
    )

    assert _keys(runtime)[0].handed_out_at is not None
    assert _free(runtime) == (pool[1].id, len(pool) - 1)


def test_the_upgrade_marks_the_keys_assignments_already_point_at(
    runtime: Runtime, database_url: str
) -> None:
    company.seed(runtime)
    import_seats(
        runtime,
        "product_id,slack_user_id,assigned_at,key\n"
        f"intellij,{MANAGER},2026-02-01T10:00:00Z,{company.INTELLIJ_KEYS[1]}\n",
        actor="test",
    )
    pool = _keys(runtime)
    cfg = alembic_config(database_url)
    with runtime.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")  # as a database from before the column was
    runtime.db.upgrade()

    with runtime.db.read() as session:
        held = session.exec(select(Assignment).where(col(Assignment.key_id).is_not(None))).one()
    after = _keys(runtime)
    assert [k.handed_out_at is not None for k in after] == [k.id == held.key_id for k in pool]
    assert after[1].handed_out_at is not None
    assert after[1].handed_out_at.replace(tzinfo=None) == held.assigned_at.replace(tzinfo=None)
    assert _free(runtime) == (pool[0].id, len(pool) - 1)
