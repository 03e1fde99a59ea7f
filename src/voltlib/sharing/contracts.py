"""Members' Plug & Charge contracts (ISO 15118 eMAIDs) in the store: registered, removed, and the
car a contract's member is driving (issue 17; docs/car-sharing.md, "Plug & Charge rentals").

A contract is a ``badges`` row of kind ``contract`` beside an ``id_tags`` row that holds its status,
so ``POST /api/v1/badges/{id}/block`` blocks it as it blocks a card; what makes it a contract is
that car sharing accepts it only from a 2.0.1 Authorize whose certificate voltlib checked.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select

from voltlib.domain import rental as dr
from voltlib.security import audit
from voltlib.sharing.store import CONTRACT, vehicle_by_tag
from voltlib.store import repo
from voltlib.store.tables import badges, id_tags, members, rentals, vehicles

# ISO 15118-2 / DIN SPEC 91286 eMAID without separators: country (2 letters), provider (3), the
# contract instance (9) and an optional check character; voltlib stores it upper case, undashed,
# as a contract certificate's subject names it.
EMAID = re.compile(r"[A-Z]{2}[A-Z0-9]{3}[A-Z0-9]{9}[A-Z0-9]?")
_DRIVING = (dr.State.STARTED.value, dr.State.OVERDUE.value)


class ContractConflict(Exception):
    """The eMAID is already another member's, a car's token or an id tag of its own."""


def canonical_emaid(text: str) -> str | None:
    """``FR-VLT-C00000001-7`` or ``frvltc000000017`` as stored (``FRVLTC000000017``), or None when
    it is no eMAID."""
    if not text.isascii():  # 'ß'.upper() is 'SS': only ASCII is upper-cased into an eMAID
        return None
    emaid = text.replace("-", "").upper()
    return emaid if EMAID.fullmatch(emaid) else None


def add_contract(conn: Connection, member_id: str, emaid: str, now: datetime) -> bool | None:
    """Registers ``emaid`` as the member's contract (Accepted). True when created, False when it was
    already theirs (nothing changes), None when there is no such member; ContractConflict otherwise."""
    if conn.execute(select(members.c.id).where(members.c.id == member_id)).first() is None:
        return None
    owner = conn.execute(select(badges.c.member_id, badges.c.kind).where(badges.c.id_tag == emaid)).first()
    if owner is not None:
        if (owner.member_id, owner.kind) == (member_id, CONTRACT):
            return False
        raise ContractConflict(f"{emaid} is already a badge or contract of a member")
    if conn.execute(select(id_tags.c.id_tag).where(id_tags.c.id_tag == emaid)).first() is not None:
        raise ContractConflict(f"{emaid} is already an id tag (a car's token, or one of its own)")
    conn.execute(insert(id_tags).values(id_tag=emaid, status="Accepted", note=f"contract of member {member_id}",
                                        created_at=now))
    conn.execute(insert(badges).values(id_tag=emaid, member_id=member_id, created_at=now, kind=CONTRACT))
    return True


def remove_contract(conn: Connection, member_id: str, emaid: str) -> bool:
    """The contract is no longer the member's: from now on it opens nothing (its id tag goes too)."""
    gone = conn.execute(delete(badges).where(and_(badges.c.id_tag == emaid, badges.c.member_id == member_id,
                                                  badges.c.kind == CONTRACT))).rowcount
    if gone:
        conn.execute(delete(id_tags).where(id_tags.c.id_tag == emaid))
    return bool(gone)


def contract_status(conn: Connection, emaid: str) -> str | None:
    return conn.execute(select(id_tags.c.status).join(badges, badges.c.id_tag == id_tags.c.id_tag)
                        .where(and_(badges.c.id_tag == emaid, badges.c.kind == CONTRACT))).scalar()


def car_driven_under(conn: Connection, emaid: str) -> str | None:
    """The id token of the car the contract's member is out with (a started or overdue rental), or
    None: the car plugged in under the member's contract is that car (a member drives one car)."""
    return conn.execute(
        select(vehicles.c.id_tag).select_from(
            badges.join(rentals, rentals.c.active_member == badges.c.member_id)
            .join(vehicles, vehicles.c.id == rentals.c.car_id))
        .where(and_(badges.c.id_tag == emaid, badges.c.kind == CONTRACT, rentals.c.state.in_(_DRIVING)))).scalar()


def car_of_token(conn: Connection, id_tag: str) -> str | None:
    """The car a transaction's token names: the car whose token it is, else (an eMAID) the car its
    contract's member is driving, else None. One read; a token that is no eMAID costs one statement."""
    if vehicle_by_tag(conn, id_tag) is not None:
        return id_tag
    return car_driven_under(conn, id_tag) if EMAID.fullmatch(id_tag) else None


def audit_decision(conn: Connection, member_id: str, cp_id: str, emaid: str, now: datetime, *,
                   refused: str | None = None, rental_id: str | None = None, car_id: str | None = None) -> None:
    """A car opened (or not) by a Plug & Charge contract, in the hash-chained audit log: no badge
    was presented, so this entry is the evidence of who took the car."""
    audit.append(conn, actor=f"member:{member_id}", action="sharing.contract." + ("refused" if refused else "badge"),
                 target=rental_id or cp_id, now=now,
                 detail={"emaid": emaid, "charge_point_id": cp_id, "car_id": car_id, "reason": refused})


def first_return_since(conn: Connection, car_tag: str, member_id: str, since: datetime) -> dict[str, Any] | None:
    """The first transaction since ``since`` that returns the member's car: one under the car's own
    token, else one under a contract of the member (start-up reconciliation of a return never applied)."""
    found = repo.first_transaction_of_tag_since(conn, car_tag, since)
    if found is not None:
        return found
    mine = conn.execute(select(badges.c.id_tag).where(and_(badges.c.member_id == member_id,
                                                           badges.c.kind == CONTRACT))).scalars()
    under = [tx for emaid in mine if (tx := repo.first_transaction_of_tag_since(conn, emaid, since)) is not None]
    return min(under, key=lambda tx: tx["started_at"]) if under else None
