"""The simulated 2.0.1 post's device model: which component and variable of OCPP 2.0.1 part 2
(appendix 3, the standardized components) reads or writes which of the post's settings.

A 2.0.1 post keeps the same settings as a 1.6 one (:func:`voltlib.sim.hardware.default_configuration`):
each variable below is another name for one of them, so the hardware reads one set of settings
whatever it speaks. Two variables have no 1.6 counterpart (the measurands of the Started and Ended
events); the dialect keeps them. Only the ``Actual`` attribute exists. Instances are ignored, but
for OCPPCommCtrlr's message attempts, which are the ``TransactionEvent`` instance's.
"""

from __future__ import annotations

from voltlib.sim.hardware import ConfigKey

# (component, variable) -> the setting it is (a 1.6 configuration key or one of EXTRA's)
VARIABLES: dict[tuple[str, str], str] = {
    ("OCPPCommCtrlr", "HeartbeatInterval"): "HeartbeatInterval",
    ("OCPPCommCtrlr", "MessageAttempts"): "TransactionMessageAttempts",
    ("OCPPCommCtrlr", "MessageAttemptInterval"): "TransactionMessageRetryInterval",
    ("SampledDataCtrlr", "TxUpdatedInterval"): "MeterValueSampleInterval",
    ("SampledDataCtrlr", "TxUpdatedMeasurands"): "MeterValuesSampledData",
    ("SampledDataCtrlr", "TxStartedMeasurands"): "TxStartedMeasurands",
    ("SampledDataCtrlr", "TxEndedMeasurands"): "TxEndedMeasurands",
    ("AlignedDataCtrlr", "Interval"): "ClockAlignedDataInterval",
    ("AuthCtrlr", "LocalPreAuthorize"): "LocalPreAuthorize",
    ("AuthCtrlr", "LocalAuthorizeOffline"): "LocalAuthorizeOffline",
    ("AuthCtrlr", "AuthorizeRemoteStart"): "AuthorizeRemoteTxRequests",
    ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"): "AllowOfflineTxForUnknownId",
    ("AuthCacheCtrlr", "Enabled"): "AuthorizationCacheEnabled",
    ("LocalAuthListCtrlr", "Enabled"): "LocalAuthListEnabled",
    ("LocalAuthListCtrlr", "ItemsPerMessage"): "SendLocalListMaxLength",
    ("ReservationCtrlr", "Enabled"): "ReservationEnabled",
    ("SecurityCtrlr", "BasicAuthPassword"): "AuthorizationKey",
    ("SecurityCtrlr", "SecurityProfile"): "SecurityProfile",
    ("SmartChargingCtrlr", "ProfileStackLevel"): "ChargeProfileMaxStackLevel",
    ("SmartChargingCtrlr", "PeriodsPerSchedule"): "ChargingScheduleMaxPeriods",
    ("TxCtrlr", "StopTxOnInvalidId"): "StopTransactionOnInvalidId",
    ("TxCtrlr", "StopTxOnEVSideDisconnect"): "StopTransactionOnEVSideDisconnect",
}
COMPONENTS = frozenset(component for component, _ in VARIABLES)
DATA_TYPES = {"int": "integer", "bool": "boolean", "str": "string", "csl": "SequenceList"}  # NotifyReport
MEASURAND_SETTINGS = frozenset({"MeterValuesSampledData", "TxStartedMeasurands", "TxEndedMeasurands"})


def extra_settings() -> dict[str, ConfigKey]:
    """The settings only a 2.0.1 post has."""
    return {
        "TxStartedMeasurands": ConfigKey("Energy.Active.Import.Register,SoC", kind="csl"),
        "TxEndedMeasurands": ConfigKey("Energy.Active.Import.Register", kind="csl"),
        "ReservationEnabled": ConfigKey("true", readonly=True, kind="bool"),
    }
