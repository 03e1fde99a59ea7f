"""Car sharing: cities, stations and bays, vehicles, members, reservations, rentals, invoices.

The rules live in :mod:`voltlib.domain.rental` and :mod:`voltlib.domain.pricing` (pure); this package
stores them (``store``), drives them from charge-point events and the API (``service``), and loads
cities and stations from data (``cities``, ``importer``).
"""
