"""Key import: 100,000 license keys through ``licensebot keys import``'s code path.

Value: ``bot.keys.import_keys`` on the text of a 100,000-line file, as the CLI calls it (split
into lines; validation, duplicate detection against the pool, Fernet encryption, insert, the
audit entry, the waitlist served and the seat alert evaluated, one transaction).
Ceiling: the least any import must do, in the same process and database: Fernet-encrypt each
key and insert the rows with one SQLAlchemy core ``executemany``. Target: at most 2x.

Each repetition imports into fresh products (one for the import, one for the ceiling), in
alternating order, so neither gains from the other's warm caches or a larger table.
"""

from __future__ import annotations

import random
import string
import time

import sqlalchemy as sa
from cryptography.fernet import Fernet

from bench import data
from bench.context import Context
from bench.report import Figure, Sample
from bot.keys import import_keys
from storage.models import LicenseKey, Product

PRODUCT_COLUMNS = (
    "id",
    "name",
    "vendor",
    "delivery",
    "seats",
    "cost_per_seat",
    "approval",
    "reclaim_after_days",
    "reclaim_grace_days",
    "auto_reclaim",
    "auto_approve",
    "min_free_seats",
    "active",
    "updated_at",
)
# auto_reclaim, auto_approve, min_free_seats, active, updated_at
FLAGS = (False, False, 0, True, data.NOW)


def license_keys(n: int) -> list[str]:
    """``n`` distinct 29-character keys like ``ABCDE-12345-...``."""
    rng = random.Random(data.SEED)
    alphabet = string.ascii_uppercase + string.digits
    found: set[str] = set()
    while len(found) < n:
        found.add("-".join("".join(rng.choices(alphabet, k=5)) for _ in range(5)))
    return sorted(found)


def run(ctx: Context) -> list[Figure]:
    n = ctx.scale(100_000, 1_000)
    keys = license_keys(n)
    text = "\n".join(keys) + "\n"
    imported: list[float] = []
    ceiling: list[float] = []
    with ctx.database("keys") as url:
        rt = data.runtime(url)
        try:
            engine = rt.db.engine
            ids = [f"{kind}-{i}" for i in range(ctx.repeat) for kind in ("import", "ceiling")]
            data.bulk_load(
                engine,
                data.table(Product),
                PRODUCT_COLUMNS,
                [
                    (pid, pid, "Vendor", "key", n, 10, data.json_list(engine, []), 30, 7, *FLAGS)
                    for pid in ids
                ],
            )
            fernet = Fernet(Fernet.generate_key())
            target = data.table(LicenseKey)

            def by_import(i: int) -> None:
                started = time.perf_counter()
                result = import_keys(rt, f"import-{i}", text.split("\n"), actor="UBENCH01")
                imported.append(time.perf_counter() - started)
                if result.added != n:
                    raise RuntimeError(f"imported {result.added} keys, expected {n}")

            def by_hand(i: int) -> None:
                started = time.perf_counter()
                rows = [
                    {
                        "product_id": f"ceiling-{i}",
                        "ciphertext": fernet.encrypt(k.encode()).decode(),
                        "imported_at": data.NOW,
                    }
                    for k in keys
                ]
                with engine.begin() as conn:
                    conn.execute(sa.insert(target), rows)
                ceiling.append(time.perf_counter() - started)

            for i in range(ctx.repeat):
                first, second = (by_import, by_hand) if i % 2 == 0 else (by_hand, by_import)
                first(i)
                second(i)
        finally:
            rt.db.dispose()
    return [
        Figure(
            f"key import ({n:,} keys)",
            Sample(tuple(imported)),
            Sample(tuple(ceiling)),
            "s",
            at_most=2.0,
            note="ceiling: Fernet encrypt of each key + one core executemany insert",
        )
    ]
