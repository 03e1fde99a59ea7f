"""OCPP 2.0.1 certificate management: block A's SignCertificate/CertificateSigned (the station's
own key, renewed) and block M's (CA certificates installed, listed and deleted; ISO 15118 contract
certificates and OCSP status relayed to the V2G back end). The typed requests and replies of both
directions."""

from __future__ import annotations

from voltlib.ocpp.v201.authorization import OCSPRequestData
from voltlib.ocpp.v201.common import CustomData, Message, Record, Reply, StatusInfo

# --- types of this block ---------------------------------------------------------------------


class CertificateHashData(Record):
    hash_algorithm: str
    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str
    custom_data: CustomData | None = None


class CertificateHashDataChain(Record):
    certificate_hash_data: CertificateHashData
    certificate_type: str
    child_certificate_hash_data: list[CertificateHashData] | None = None
    custom_data: CustomData | None = None


# --- requests, each followed by its reply ----------------------------------------------------


class SignCertificate(Message):
    ACTION = "SignCertificate"
    csr: str
    certificate_type: str | None = None  # absent: ChargingStationCertificate (A02.FR.20 leaves it to the CSMS)
    custom_data: CustomData | None = None


class SignCertificateReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class CertificateSigned(Message):
    ACTION = "CertificateSigned"
    certificate_chain: str
    certificate_type: str | None = None
    custom_data: CustomData | None = None


class CertificateSignedReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class InstallCertificate(Message):
    ACTION = "InstallCertificate"
    certificate_type: str
    certificate: str
    custom_data: CustomData | None = None


class InstallCertificateReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class GetInstalledCertificateIds(Message):
    ACTION = "GetInstalledCertificateIds"
    certificate_type: list[str] | None = None
    custom_data: CustomData | None = None


class GetInstalledCertificateIdsReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    certificate_hash_data_chain: list[CertificateHashDataChain] | None = None
    custom_data: CustomData | None = None


class DeleteCertificate(Message):
    ACTION = "DeleteCertificate"
    certificate_hash_data: CertificateHashData
    custom_data: CustomData | None = None


class DeleteCertificateReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class Get15118EVCertificate(Message):
    ACTION = "Get15118EVCertificate"
    iso15118_schema_version: str
    action: str
    exi_request: str
    custom_data: CustomData | None = None


class Get15118EVCertificateReply(Reply):
    status: str
    exi_response: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class GetCertificateStatus(Message):
    ACTION = "GetCertificateStatus"
    ocsp_request_data: OCSPRequestData
    custom_data: CustomData | None = None


class GetCertificateStatusReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    ocsp_result: str | None = None
    custom_data: CustomData | None = None
