"""The three staff roles, as Django groups created by a data migration.

- Admin: configures programs, imports partners, manages users (also ``is_staff`` for the admin).
- CS manager: the whole queue, reassignment, escalations, loop KPIs.
- CS staff: works follow-ups assigned to them or unassigned.
Partners have no account at all: their only credential is the survey link.
"""

from __future__ import annotations

ADMIN = "Admin"
CS_MANAGER = "CS manager"
CS_STAFF = "CS staff"
ALL_ROLES = (ADMIN, CS_MANAGER, CS_STAFF)


def _group_names(user) -> set[str]:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return set()
    cached = getattr(user, "_nps_role_names", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._nps_role_names = cached
    return cached


def is_admin(user) -> bool:
    return bool(getattr(user, "is_superuser", False)) or ADMIN in _group_names(user)


def is_cs_manager(user) -> bool:
    return is_admin(user) or CS_MANAGER in _group_names(user)


def is_cs(user) -> bool:
    """Anyone who may see the staff pages: CS staff, CS managers and admins."""
    return is_cs_manager(user) or CS_STAFF in _group_names(user)
