"""OCPP 1.6J (edition 2, with the security whitepaper extensions)."""
