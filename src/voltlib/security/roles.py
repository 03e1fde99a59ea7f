"""The API roles and who may do what (least privilege). The full matrix is in docs/security.md."""

from __future__ import annotations

ADMIN, OPERATOR, SECURITY, TECHNICIAN, MEMBER = "admin", "operator", "security", "technician", "member"
ROLES = (ADMIN, OPERATOR, SECURITY, TECHNICIAN, MEMBER)

# Security analysts read and act on alerts; operators see them (a quarantined station is their
# business) but do not close them; technicians see their own work orders only.
SEE_ALERTS = frozenset({ADMIN, SECURITY, OPERATOR})
HANDLE_ALERTS = frozenset({ADMIN, SECURITY})
RESPOND = frozenset({ADMIN, SECURITY})
READ_AUDIT = frozenset({ADMIN, SECURITY})
PLAN_WORK = frozenset({ADMIN, OPERATOR, SECURITY})
OWN_WORK = frozenset({TECHNICIAN})
