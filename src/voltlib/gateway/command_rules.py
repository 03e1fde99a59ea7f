"""What voltlib refuses to send to a charge point, whatever the operator asks, in either version.

The password and the security profile are changed through their own paths (rotate-password stores
the new password's hash; the profile may only go up over OCPP, whitepaper A00.FR.005 and 2.0.1
A05.FR.11); a raw command that would change them behind voltlib's back is refused with 422.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from voltlib.domain.commands import CommandRefused

PASSWORD_KEYS = {("1.6", "authorizationkey"), ("2.0.1", "securityctrlr.basicauthpassword")}
PROFILE_KEYS = {("1.6", "securityprofile"), ("2.0.1", "securityctrlr.securityprofile")}


def _settings(version: str, action: str, payload: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(lower-case key, value) pairs a configuration command sets."""
    if version == "1.6" and action == "ChangeConfiguration":
        yield str(payload.get("key", "")).lower(), str(payload.get("value", ""))
    if version == "2.0.1" and action == "SetVariables":
        for item in payload.get("setVariableData") or []:
            component = str((item.get("component") or {}).get("name", ""))
            variable = str((item.get("variable") or {}).get("name", ""))
            yield f"{component}.{variable}".lower(), str(item.get("attributeValue", ""))


def check(version: str, action: str, payload: dict[str, Any], current_profile: int | None) -> None:
    """Raise :class:`CommandRefused` if the command would set the password or lower the profile."""
    if version == "2.0.1" and action == "SetNetworkProfile" and current_profile is not None:
        wanted = (payload.get("connectionData") or {}).get("securityProfile")
        if isinstance(wanted, int) and wanted < current_profile:  # the same profile: a new URL, APN... (B09)
            raise CommandRefused(422, "security-profile-downgrade",
                                 "a network profile may not use a lower security profile than the station's "
                                 "(2.0.1 A05, whitepaper A00.FR.005)")
    for key, value in _settings(version, action, payload):
        if (version, key) in PASSWORD_KEYS:
            raise CommandRefused(422, "use-rotate-password",
                                 "the charge point's password is changed with POST .../rotate-password, "
                                 "which stores its hash")
        if (version, key) in PROFILE_KEYS and current_profile is not None and (
                not value.isdigit() or int(value) <= current_profile):
            raise CommandRefused(422, "security-profile-downgrade",
                                 "the SecurityProfile can only be raised over OCPP (whitepaper A00.FR.005)")


def is_remote_start(action: str) -> bool:
    return action in ("RemoteStartTransaction", "RequestStartTransaction")
