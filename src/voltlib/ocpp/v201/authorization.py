"""OCPP 2.0.1 functional blocks C and D (authorization, local authorization list): the typed
requests and replies of both directions. Every IdToken type (ISO14443, ISO15693, eMAID, Central,
KeyCode, Local, MacAddress, NoAuthorization) travels in :class:`IdToken`; its ``type`` says which."""

from __future__ import annotations

import msgspec

from voltlib.ocpp.v201.common import CustomData, IdToken, IdTokenInfo, Int32, Message, Record, Reply, StatusInfo

# --- types of this block ---------------------------------------------------------------------


class OCSPRequestData(Record):
    hash_algorithm: str
    issuer_key_hash: str
    issuer_name_hash: str
    responder_url: str = msgspec.field(name="responderURL")
    serial_number: str
    custom_data: CustomData | None = None


class AuthorizationData(Record):
    id_token: IdToken
    id_token_info: IdTokenInfo | None = None
    custom_data: CustomData | None = None


# --- requests, each followed by its reply ----------------------------------------------------


class Authorize(Message):
    ACTION = "Authorize"
    id_token: IdToken
    certificate: str | None = None
    iso15118_certificate_hash_data: list[OCSPRequestData] | None = None
    custom_data: CustomData | None = None


class AuthorizeReply(Reply):
    id_token_info: IdTokenInfo
    certificate_status: str | None = None
    custom_data: CustomData | None = None


class ClearCache(Message):
    ACTION = "ClearCache"
    custom_data: CustomData | None = None


class ClearCacheReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class SendLocalList(Message):
    ACTION = "SendLocalList"
    update_type: str
    version_number: Int32
    local_authorization_list: list[AuthorizationData] | None = None
    custom_data: CustomData | None = None


class SendLocalListReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class GetLocalListVersion(Message):
    ACTION = "GetLocalListVersion"
    custom_data: CustomData | None = None


class GetLocalListVersionReply(Reply):
    version_number: Int32
    custom_data: CustomData | None = None
