"""The dependency rules of DESIGN.md, checked on the import statements of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SLACK = ("slack_bolt", "slack_sdk")
# The composition root, the server and the CLI wire Slack to the domain; nothing else in bot/ may.
COMPOSITION = {"bot/app.py", "bot/server.py", "bot/cli.py"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def starts(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("path", modules("storage"), ids=lambda p: str(p.relative_to(ROOT)))
def test_storage_knows_nothing_of_slack_or_the_domain(path: Path) -> None:
    bad = {n for n in imports(path) if starts(n, ("bot", "handlers", *SLACK))}
    assert not bad, bad


@pytest.mark.parametrize("path", modules("bot"), ids=lambda p: str(p.relative_to(ROOT)))
def test_domain_modules_do_not_import_slack_or_handlers(path: Path) -> None:
    if str(path.relative_to(ROOT)) in COMPOSITION:
        return
    bad = {n for n in imports(path) if starts(n, ("handlers", *SLACK))}
    assert not bad, bad


@pytest.mark.parametrize("path", modules("handlers"), ids=lambda p: str(p.relative_to(ROOT)))
def test_handlers_never_touch_the_database(path: Path) -> None:
    bad = {
        n
        for n in imports(path)
        if starts(n, ("sqlmodel", "sqlalchemy", "storage.models", "storage.db"))
    }
    assert not bad, bad


def test_the_rules_are_checked_on_real_modules() -> None:
    # Guards against a glob that silently matches nothing.
    assert len(modules("bot")) > 10 and len(modules("handlers")) > 5 and len(modules("storage")) > 5
