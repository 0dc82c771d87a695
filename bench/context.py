"""What every benchmark gets: where to put its database, how big to go, how often to repeat."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

SIZES = ("tiny", "full")
DEPLOYS = ("single", "split")


@dataclass(frozen=True)
class Context:
    db: str  # "sqlite" | "postgres"
    pg_url: str  # an existing PostgreSQL database; benchmarks make their own databases beside it
    size: str  # "full" is what the targets are about; "tiny" only proves the benchmark runs
    repeat: int
    workdir: Path
    # "single": one ``licensebot serve`` does everything; "split": the load goes to a
    # ``serve --role web`` process and a second, ``--role all``, delivers and schedules.
    deploy: str = "single"

    @property
    def tiny(self) -> bool:
        return self.size == "tiny"

    def scale(self, full: int, tiny: int) -> int:
        return tiny if self.tiny else full

    @contextmanager
    def database(self, label: str) -> Iterator[str]:
        """A fresh, empty database URL of the chosen kind, removed afterwards."""
        name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
        if self.db == "sqlite":
            path = self.workdir / f"{name}.db"
            try:
                yield f"sqlite:///{path}"
            finally:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
            return
        admin = sa.create_engine(self.pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.engine.make_url(self.pg_url).set(database=name)
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
