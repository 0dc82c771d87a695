"""The product catalog: what licenses exist, how they are delivered and who approves them.

The catalog is a YAML file an IT admin keeps; ``load_catalog`` makes the database match it.
Products are never deleted (requests point at them): a product left out of the file is
marked inactive, and comes back if a later file lists it again.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from sqlalchemy import bindparam, delete, func, insert
from sqlmodel import Session, col, select

from bot import delivery, seat_alerts
from bot.directory import control_character_problem, looks_like_user_id, quoted
from bot.errors import CatalogError, UnknownProduct
from bot.roles import ROLES
from bot.runtime import Runtime
from storage import audit
from storage.models import Assignment, GroupMember, LicenseKey, LicenseRequest, Product

_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_SLUG_RULE = (
    "lowercase letters, digits, '.', '_' or '-', at most 64, starting with a letter or digit"
)
_MAX_REPORTED = 20
# Bounds a person could mean, well inside the columns: seats and reclaim_after_days are 32-bit
# INTEGERs on PostgreSQL (and 64-bit on SQLite), and ten years is longer than any licence term.
MAX_SEATS = 1_000_000
MAX_RECLAIM_DAYS = 3650
# cost_per_seat is NUMERIC(12, 2): two decimals, so below 10**10 before the point.
_COST_BELOW = Decimal(10**10)
# name and vendor are unbounded VARCHARs; longer than this is a paste gone wrong, and would not
# fit a Slack card.
MAX_TEXT = 200
_URL = re.compile(r"https?://[^\s/?#]+[^\s]{0,2000}")
_USAGE_SOURCE = re.compile(r"[a-z][a-z0-9_-]{0,31}:[^\s]{1,200}")


def _no_control_characters(value: str) -> str:
    problem = control_character_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# An approval step is checked against the groups and roles after parsing (_step_problem); only
# what could never be a step is refused here, with the step's own line.
_Step = Annotated[str, AfterValidator(_no_control_characters)]


class ProductSpec(BaseModel):
    """One product as written in the catalog file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    vendor: str = ""
    delivery: Literal["key", "seat"]
    seats: Annotated[int, Field(strict=True, ge=0, le=MAX_SEATS)]
    # `lt` rather than max_digits: "less than 10000000000" says what to change, where "no more
    # than 10 digits before the decimal point" makes the reader count.
    cost_per_seat: Annotated[Decimal, Field(ge=0, lt=_COST_BELOW, decimal_places=2)] = Decimal(0)
    renewal_date: date | None = None
    # None (the key is missing) is refused; an explicit [] approves at once, like auto_approve.
    approval: list[_Step] | None = None
    auto_approve: Annotated[bool, Field(strict=True)] = False
    reclaim_after_days: Annotated[int, Field(strict=True, ge=1, le=MAX_RECLAIM_DAYS)] = 30
    # Days a nudged holder has to answer before the seat counts as reclaimable.
    reclaim_grace_days: Annotated[int, Field(strict=True, ge=1, le=MAX_RECLAIM_DAYS)] = 7
    auto_reclaim: Annotated[bool, Field(strict=True)] = False
    min_free_seats: Annotated[int, Field(strict=True, ge=0, le=MAX_SEATS)] = 0
    # Time-limited grants: each seat ends this many days after it was assigned.
    max_days: Annotated[int, Field(strict=True, ge=1, le=MAX_RECLAIM_DAYS)] | None = None
    # Seat products: where assignment and release events are POSTed (signed with HMAC).
    provision_webhook: str | None = None
    # Where a pull connector learns who uses it: "<connector>:<the vendor's app id>".
    usage_source: str | None = None

    @field_validator("provision_webhook")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = _no_control_characters(value.strip())
        if not _URL.fullmatch(value):
            raise ValueError(
                f"{quoted(value)} is not an http(s) URL (for example https://idp.example.com/hook)"
            )
        return value

    @field_validator("usage_source")
    @classmethod
    def _source(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = _no_control_characters(value.strip())
        if not _USAGE_SOURCE.fullmatch(value):
            raise ValueError(
                f"{quoted(value)} is not a usage source; write CONNECTOR:APP_ID, "
                "for example okta:0oa1gjh63g214q0Hq0g4"
            )
        return value

    @model_validator(mode="after")
    def _webhook_for_seats(self) -> ProductSpec:
        if self.provision_webhook is not None and self.delivery != "seat":
            raise ValueError(
                "provision_webhook is for delivery: seat products (IT provisions those seats)"
            )
        return self

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.fullmatch(_no_control_characters(value)):
            raise ValueError(f"{quoted(value)} is not allowed; an id must be {_SLUG_RULE}")
        return value

    @field_validator("name", "vendor")
    @classmethod
    def _text(cls, value: str, info: ValidationInfo) -> str:
        value = _no_control_characters(value.strip())
        if len(value) > MAX_TEXT:
            raise ValueError(f"is {len(value)} characters long; at most {MAX_TEXT} are allowed")
        if not value and info.field_name == "name":
            raise ValueError("is empty")
        return value


class CatalogFile(BaseModel):
    """The whole catalog file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    groups: dict[str, list[str]] = Field(default_factory=dict)
    products: list[ProductSpec]


@dataclass(frozen=True)
class CatalogLoadResult:
    added: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]
    deactivated: tuple[str, ...]
    groups: int
    group_members: int


@dataclass(frozen=True)
class ProductInfo:
    id: str
    name: str
    vendor: str
    delivery: str
    seats: int
    cost_per_seat: Decimal
    renewal_date: date | None
    approval: tuple[str, ...]
    auto_approve: bool
    seats_taken: int
    seats_left: int
    reclaim_after_days: int = 30
    reclaim_grace_days: int = 7
    auto_reclaim: bool = False
    min_free_seats: int = 0
    active: bool = True
    max_days: int | None = None
    provision_webhook: str | None = None
    usage_source: str | None = None


# --- reading the file -------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses repeated keys and reports bad dates with their line."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Hashable] = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=deep)
        # PyYAML silently keeps the last of two equal keys; a repeated `seats:` is a typo.
        if isinstance(key, Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"key {key!r} appears twice",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


def _timestamp(loader: _StrictLoader, node: yaml.ScalarNode) -> Any:
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError as exc:
        # PyYAML raises a bare ValueError for 2027-13-01, which would lose the line number.
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a valid date ({exc})", node.start_mark
        ) from None


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def parse_catalog(text: str, source: str = "catalog") -> CatalogFile:
    """Parse and validate a catalog file; raise CatalogError naming every problem and its line."""
    try:
        root, raw = _read(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "unreadable YAML"
        raise CatalogError(f"{source}: {where}{problem}; nothing was loaded.") from None
    except yaml.reader.ReaderError as exc:
        # Raised for a control character in the file itself; it carries an offset, not a line.
        line, column = _line_and_column(text, exc.position)
        raise CatalogError(
            f"{source}: line {line}, column {column}: character {_code_point(exc.character)} "
            "cannot appear in a YAML file (it is a control character); remove it; "
            "nothing was loaded."
        ) from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{source}: not valid YAML ({exc}); nothing was loaded.") from None
    if raw is None:
        raise CatalogError(f"{source} is empty; it needs a `products:` list.")
    if not isinstance(raw, dict):
        raise CatalogError(
            f"{source}: the top level must be a mapping with `groups:` and `products:`."
        )
    try:
        catalog = CatalogFile.model_validate(raw)
    except ValidationError as exc:
        raise _fail(source, root, [_describe(err, raw) for err in exc.errors()]) from None
    problems = _cross_check(catalog)
    if problems:
        raise _fail(source, root, problems)
    return catalog


def _read(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree and the data built from it (None, None for an empty file)."""
    # Safe: _StrictLoader is SafeLoader plus two checks; it builds only plain data. This is
    # yaml.load taken apart, to keep the node tree, which tells each problem's line.
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        return root, loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()


def _line_and_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset``, counting line breaks as YAML does."""
    lines = re.split("\r\n|[\n\r\x85\u2028\u2029]", text[:offset])
    return len(lines), len(lines[-1]) + 1


def _code_point(character: object) -> str:
    return f"U+{character:04X}" if isinstance(character, int) else repr(character)


# Where a problem is: keys and list indexes from the top of the file, as pydantic reports them.
_Path = Sequence[str | int]


def _fail(source: str, root: yaml.Node | None, problems: list[tuple[_Path, str]]) -> CatalogError:
    """One line naming every problem (up to a cap) with its line, in the order of the file."""
    located = sorted(
        ((_line_of(root, path), problem) for path, problem in problems),
        key=lambda found: found[0] or 0,  # stable: problems on one line keep their order
    )
    texts = [f"line {line}, {problem}" if line else problem for line, problem in located]
    shown = "; ".join(texts[:_MAX_REPORTED])
    if len(texts) > _MAX_REPORTED:
        shown += f"; and {len(texts) - _MAX_REPORTED} more"
    return CatalogError(f"{source}: {shown} (nothing was loaded)")


def _line_of(root: yaml.Node | None, path: _Path) -> int | None:
    """The 1-based line of the deepest node ``path`` reaches (a mapping entry's key line)."""
    if root is None or root.start_mark is None:
        return None
    node, line = root, root.start_mark.line
    for part in path:
        found: tuple[yaml.Node, yaml.Node] | None = None
        if isinstance(node, yaml.MappingNode):
            # Keys were read from these scalars, and repeated keys are refused: one match at most.
            found = next(
                (
                    (key, value)
                    for key, value in node.value
                    if isinstance(key, yaml.ScalarNode) and key.value == str(part)
                ),
                None,
            )
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            found = (node.value[part], node.value[part])
        if found is None:
            break  # e.g. a missing key: the enclosing entry is the place to add it
        marked, node = found
        if marked.start_mark is not None:
            line = marked.start_mark.line
    return line + 1


def _plain(name: str) -> str:
    """An id or key as it may appear unquoted in a message: escaped and cut unless a plain slug."""
    return name if _SLUG.fullmatch(name) else quoted(name)[1:-1]


def _product_label(index: int, raw_or_id: Any) -> str:
    pid = raw_or_id.get("id") if isinstance(raw_or_id, dict) else raw_or_id
    return (
        f"products[{index}] ({_plain(pid)})"
        if isinstance(pid, str) and pid
        else f"products[{index}]"
    )


def _group_label(group: str) -> str:
    return f"groups.{_plain(group)}"


def _describe(err: ErrorDetails, raw: dict[str, Any]) -> tuple[_Path, str]:
    loc = list(err["loc"])
    if len(loc) >= 2 and loc[0] == "products" and isinstance(loc[1], int):
        products = raw.get("products")
        item = products[loc[1]] if isinstance(products, list) else None
        prefix, rest = _product_label(loc[1], item), loc[2:]
        allowed = ", ".join(ProductSpec.model_fields)
    else:
        prefix, rest = "", loc
        allowed = ", ".join(CatalogFile.model_fields)
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{_plain(p)}" for p in rest).lstrip(".")
    if err["type"] == "extra_forbidden":
        return (
            loc,
            f"{prefix or 'top level'}: unknown key {quoted(str(rest[-1]))} (known keys: {allowed})",
        )
    if err["type"] == "missing":
        return loc, f"{prefix or 'top level'}: missing '{field}'"
    if err["type"] == "value_error":
        message = str(err.get("ctx", {}).get("error", err["msg"]))
    elif err["type"] in ("model_type", "dict_type"):
        message = f"must be a mapping (key: value), not {type(err['input']).__name__}"
    else:
        message = err["msg"]
    target = f"{prefix}: {field}" if prefix and field else prefix or field or "top level"
    return loc, f"{target}: {message}"


def _cross_check(catalog: CatalogFile) -> list[tuple[_Path, str]]:
    """Rules that need the whole file: unique ids and approval steps that resolve."""
    return [*_check_groups(catalog.groups), *_check_products(catalog)]


def _check_groups(groups: dict[str, list[str]]) -> list[tuple[_Path, str]]:
    problems: list[tuple[_Path, str]] = []
    for group, members in groups.items():
        label, here = _group_label(group), ("groups", group)
        control = control_character_problem(group)
        if control is not None:
            problems.append((here, f"{label}: the group name {control}"))
        elif not _SLUG.fullmatch(group) or group == "manager":
            problems.append((here, f"{label}: a group name must be {_SLUG_RULE}, not 'manager'"))
        if not members:
            problems.append((here, f"{label}: has no members"))
        for position, member in enumerate(members):
            if not looks_like_user_id(member):
                why = control_character_problem(member) or "is not a Slack user ID (U…/W…)"
                problems.append(((*here, position), f"{label}: member {quoted(member)} {why}"))
    return problems


def _check_products(catalog: CatalogFile) -> list[tuple[_Path, str]]:
    problems: list[tuple[_Path, str]] = []
    first: dict[str, int] = {}
    for index, spec in enumerate(catalog.products):
        label, here = _product_label(index, spec.id), ("products", index)
        if spec.id in first:
            problems.append(
                (
                    (*here, "id"),
                    f"{label}: id {spec.id!r} is already used by products[{first[spec.id]}]",
                )
            )
        first.setdefault(spec.id, index)
        if spec.approval is None and not spec.auto_approve:
            problems.append(
                (
                    here,
                    f"{label}: approval is missing; list its steps, or write `approval: []` to "
                    "approve requests at once",
                )
            )
        steps = spec.approval or []
        for position, step in enumerate(steps):
            where = (*here, "approval", position)
            problem = _step_problem(step, catalog.groups)
            if problem:
                problems.append((where, f"{label}: {problem}"))
            elif steps[:position].count(step) == 1:  # its second time: reported once
                problems.append((where, f"{label}: approval step {step!r} appears twice"))
    return problems


def _step_problem(step: str, groups: dict[str, list[str]]) -> str | None:
    if step == "manager" or step in groups or looks_like_user_id(step):
        return None
    if step.startswith("role:"):
        if step.removeprefix("role:") in ROLES:
            return None
        return f"approval step {quoted(step)} names an unknown role; roles are {', '.join(ROLES)}"
    return f"approval step {quoted(step)} is not manager, a group, role:ROLE or a user ID"


# --- writing it -------------------------------------------------------------------------------


def load_catalog(
    rt: Runtime, text: str, *, actor: str, source: str = "catalog"
) -> CatalogLoadResult:
    """Make the products and groups in the database match the catalog file, in one transaction."""
    catalog = parse_catalog(text, source)
    now = rt.clock.now()
    added: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    deactivated: list[str] = []
    with rt.db.transaction() as session:
        existing = {p.id: p for p in session.exec(select(Product))}
        for spec in catalog.products:
            values = _values(spec)
            product = existing.pop(spec.id, None)
            if product is None:
                session.add(Product(**values, active=True, updated_at=now))
                added.append(spec.id)
            elif product.active and all(getattr(product, k) == v for k, v in values.items()):
                unchanged.append(spec.id)
            else:
                for name, value in values.items():
                    setattr(product, name, value)
                product.active = True
                product.updated_at = now
                session.add(product)
                updated.append(spec.id)
        for product in existing.values():
            if product.active:
                product.active = False
                product.updated_at = now
                session.add(product)
                deactivated.append(product.id)
        members = sorted({(g, u) for g, users in catalog.groups.items() for u in users})
        session.execute(delete(GroupMember))
        if members:
            session.execute(
                insert(GroupMember.__table__),  # type: ignore[attr-defined]  # set by SQLModel
                [{"group_name": g, "user_id": u} for g, u in members],
            )
        result = CatalogLoadResult(
            added=tuple(added),
            updated=tuple(updated),
            unchanged=tuple(unchanged),
            deactivated=tuple(sorted(deactivated)),
            groups=len(catalog.groups),
            group_members=len(members),
        )
        audit.append(
            session,
            rt.audit_keys,
            at=now,
            actor=actor,
            action="catalog.loaded",
            subject="catalog",
            details={
                "source": source,
                "products": len(catalog.products),
                "added": list(result.added),
                "updated": list(result.updated),
                "deactivated": list(result.deactivated),
                "unchanged": len(result.unchanged),
                "groups": result.groups,
                "group_members": result.group_members,
            },
        )
        _after_seat_changes(session, rt, [*added, *updated], now=now)
    return result


def _after_seat_changes(
    session: Session, rt: Runtime, product_ids: list[str], *, now: datetime
) -> None:
    """More seats may serve people waiting; any seat change may change what IT was told."""
    if not product_ids:
        return
    waiting = session.exec(
        select(LicenseRequest.product_id)
        .where(
            col(LicenseRequest.product_id).in_(product_ids),
            LicenseRequest.status == "waitlisted",
        )
        .distinct()
    ).all()
    for product_id in sorted(waiting):
        delivery.assign_waitlisted(session, rt, product_id, now=now)
    seat_alerts.evaluate(session, rt, product_ids, now=now)


def _values(spec: ProductSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "name": spec.name,
        "vendor": spec.vendor,
        "delivery": spec.delivery,
        "seats": spec.seats,
        "cost_per_seat": spec.cost_per_seat,
        "renewal_date": spec.renewal_date,
        "approval": list(spec.approval or []),
        "auto_approve": spec.auto_approve,
        "reclaim_after_days": spec.reclaim_after_days,
        "reclaim_grace_days": spec.reclaim_grace_days,
        "auto_reclaim": spec.auto_reclaim,
        "min_free_seats": spec.min_free_seats,
        "max_days": spec.max_days,
        "provision_webhook": spec.provision_webhook,
        "usage_source": spec.usage_source,
    }


# --- reading it back --------------------------------------------------------------------------


@functools.cache
def _infos_query(*, active_only: bool, one: bool) -> Any:
    """The products-with-counts statement, built once per shape: building it costs more than
    running it (every request card renders one product), and with ``one`` the counts are
    taken for the ``product_id`` parameter's rows only (through the product_id indexes)."""
    # Counted in SQL with GROUP BY: the per-product numbers never load assignment rows.
    taken = select(Assignment.product_id, func.count().label("n")).where(
        col(Assignment.released_at).is_(None)
    )
    # A key is free until it is first handed out (a range of ix_license_key_free).
    free_keys = select(LicenseKey.product_id, func.count().label("n")).where(
        col(LicenseKey.handed_out_at).is_(None)
    )
    if one:
        taken = taken.where(col(Assignment.product_id) == bindparam("product_id"))
        free_keys = free_keys.where(col(LicenseKey.product_id) == bindparam("product_id"))
    counted = taken.group_by(Assignment.product_id).subquery()
    free = free_keys.group_by(LicenseKey.product_id).subquery()
    stmt = (
        select(Product, func.coalesce(counted.c.n, 0), func.coalesce(free.c.n, 0))
        .outerjoin(counted, counted.c.product_id == col(Product.id))
        .outerjoin(free, free.c.product_id == col(Product.id))
        .order_by(col(Product.id))
    )
    if one:
        stmt = stmt.where(col(Product.id) == bindparam("product_id"))
    if active_only:
        stmt = stmt.where(col(Product.active).is_(True))
    return stmt


def _infos(
    session: Session,
    *,
    active_only: bool,
    product_id: str | None = None,
    product_ids: Sequence[str] | None = None,
) -> list[ProductInfo]:
    stmt = _infos_query(active_only=active_only, one=product_id is not None)
    params = {} if product_id is None else {"product_id": product_id}
    if product_ids is not None:
        stmt = stmt.where(col(Product.id).in_(product_ids))
    out = []
    for product, seats_taken, keys_free in session.exec(stmt, params=params).all():
        open_seats = max(product.seats - seats_taken, 0)
        out.append(
            ProductInfo(
                id=product.id,
                name=product.name,
                vendor=product.vendor,
                delivery=product.delivery,
                seats=product.seats,
                cost_per_seat=Decimal(product.cost_per_seat),
                renewal_date=product.renewal_date,
                approval=tuple(product.approval),
                auto_approve=product.auto_approve,
                seats_taken=int(seats_taken),
                seats_left=min(open_seats, int(keys_free))
                if product.delivery == "key"
                else open_seats,
                reclaim_after_days=product.reclaim_after_days,
                reclaim_grace_days=product.reclaim_grace_days,
                auto_reclaim=product.auto_reclaim,
                min_free_seats=product.min_free_seats,
                active=product.active,
                max_days=product.max_days,
                provision_webhook=product.provision_webhook,
                usage_source=product.usage_source,
            )
        )
    return out


def product_info(session: Session, product_id: str) -> ProductInfo:
    """One product with its seat counts, inside a caller's transaction (active or not)."""
    found = _infos(session, active_only=False, product_id=product_id)
    if not found:
        raise UnknownProduct(product_id, [])
    return found[0]


def product_infos(session: Session, product_ids: Iterable[str]) -> list[ProductInfo]:
    """The active products among ``product_ids`` with their seat counts, by ID, inside a
    caller's transaction: the one place free seats are counted (keys: the lesser of open seats
    and unassigned keys)."""
    ids = sorted(set(product_ids))
    if len(ids) == 1:  # the common case (one hand-out): counts for that product only
        return _infos(session, active_only=True, product_id=ids[0])
    return _infos(session, active_only=True, product_ids=ids) if ids else []


def list_products(rt: Runtime, *, active_only: bool = True) -> list[ProductInfo]:
    with rt.db.read() as session:
        return _infos(session, active_only=active_only)


def get_product(rt: Runtime, product_id: str, *, active_only: bool = True) -> ProductInfo:
    """The product with that ID (or exact name, any case); UnknownProduct with close matches."""
    wanted = product_id.strip()
    with rt.db.read() as session:
        found = _infos(session, active_only=active_only, product_id=wanted.lower())
        if found:
            return found[0]
        by_name = select(Product.id).where(func.lower(Product.name) == wanted.lower())
        if active_only:
            by_name = by_name.where(col(Product.active).is_(True))
        named = session.exec(by_name).all()
        if len(named) == 1:
            return _infos(session, active_only=active_only, product_id=named[0])[0]
        raise UnknownProduct(wanted, suggest_in(session, wanted, active_only=active_only))


def suggest(rt: Runtime, text: str) -> list[str]:
    """Up to three product IDs whose ID or name is close to ``text``."""
    with rt.db.read() as session:
        return suggest_in(session, text, active_only=True)


def suggest_in(session: Session, text: str, *, active_only: bool) -> list[str]:
    """``suggest`` inside a caller's transaction."""
    stmt = select(Product.id, Product.name)
    if active_only:
        stmt = stmt.where(col(Product.active).is_(True))
    by_label: dict[str, str] = {}
    for pid, name in session.exec(stmt).all():
        by_label.setdefault(pid.lower(), pid)
        by_label.setdefault(name.lower(), pid)
    wanted = text.strip().lower()
    if not wanted:
        return []
    ids = _unique(by_label[m] for m in difflib.get_close_matches(wanted, by_label, n=6))
    if len(ids) < 3:
        # "idea" is far from "jetbrains intellij idea ultimate" by ratio, yet clearly meant it.
        ids = _unique([*ids, *(pid for label, pid in sorted(by_label.items()) if wanted in label)])
    return ids[:3]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
