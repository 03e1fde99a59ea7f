"""The tiny city of tests/sharing, for the energy tests."""

from tests.sharing.conftest import city

__all__ = ["city"]
