"""Battery model of a car-sharing vehicle: range, trip energy, LMP keep-warm, charge curve, SoC estimation.

Pure and typed: no I/O and no clock reads. Time always comes in as a parameter (hours, seconds or
a ``datetime``), so the simulator and the server can share these functions.

Conventions
-----------
* **State of charge (SoC)** is a float in ``[0, 1]`` over the *usable* energy
  (``capacity_kwh × usable_fraction``), i.e. what the dashboard and the OCPP ``SoC`` measurand show.
* **Grid-side power.** Every power handed to the charging functions (``limit_w``, ``power_available_w``)
  is measured at the charge point, before the on-board charger. Only ``charging_efficiency`` of the
  charging part reaches the battery; keep-warm power goes to the heater, not the cells.
* A plugged-in car draws ``keep_warm_w`` *first*; only the rest can charge. Curve functions
  (``charge_power_w``, ``step_charge``) describe the charging part alone, keep-warm excluded.

The :data:`BLUECAR` parameters and where each one comes from are documented next to the values
and in ``docs/energy.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

SpeedBand = Literal["urban", "highway"]
Season = Literal["winter", "spring", "summer", "autumn"]
SocSource = Literal["measured", "metered", "telematics", "model"]

#: Sources that observe the battery itself; the estimator re-anchors on them.
TRUE_SOURCES: Final[frozenset[str]] = frozenset({"measured", "telematics"})

#: Approximate seasonal mean air temperature in Paris (°C), used when a trip gives a season but no
#: measured temperature. Rounded from Météo-France 1991-2020 normals for Paris-Montsouris
#: (Dec-Feb ≈ 5.5, Mar-May ≈ 12.5, Jun-Aug ≈ 20.5, Sep-Nov ≈ 13): good to about a degree, which is
#: plenty for a range estimate.
SEASON_AMBIENT_C: Final[dict[str, float]] = {"winter": 5.5, "spring": 12.5, "summer": 20.5, "autumn": 13.0}


@dataclass(frozen=True, slots=True)
class VehicleModel:
    """Parameters of one vehicle model. Plain data: add a model by creating another instance."""

    name: str
    capacity_kwh: float
    """Nominal pack energy."""
    usable_fraction: float
    """Share of the nominal energy between 0 % and 100 % displayed SoC."""
    urban_wh_per_km: float
    """Energy per km at the battery in urban driving, mild weather (no heating / air conditioning)."""
    highway_wh_per_km: float
    """Energy per km at the battery on highways, mild weather."""
    comfort_low_c: float
    """Below this ambient temperature cabin heating adds consumption."""
    comfort_high_c: float
    """Above this ambient temperature air conditioning adds consumption."""
    cold_penalty_per_c: float
    """Extra consumption (fraction) per °C below ``comfort_low_c``."""
    hot_penalty_per_c: float
    """Extra consumption (fraction) per °C above ``comfort_high_c``."""
    keep_warm_w: float
    """Heater power a plugged-in car draws from its charge point to hold the battery hot, at the reference ambient."""
    self_discharge_per_h: float
    """SoC lost per hour when unplugged (the battery heats itself), at the reference ambient."""
    battery_temp_c: float
    """Battery operating temperature (hot-battery chemistries such as LMP)."""
    reference_ambient_c: float
    """Ambient temperature at which ``keep_warm_w`` and ``self_discharge_per_h`` were observed."""
    max_ac_charge_w: float
    """Grid-side charging power the car accepts below the knee (on-board charger limit)."""
    knee_soc: float
    """SoC above which charging power tapers."""
    min_taper_w: float
    """Charging power just before 100 % SoC; linear taper from ``max_ac_charge_w`` at the knee."""
    charging_efficiency: float
    """Share of grid-side charging energy that ends up stored in the battery."""
    sources: dict[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)
    """Where each figure comes from (parameter name -> citation or 'assumption: ...')."""

    def __post_init__(self) -> None:
        if self.capacity_kwh <= 0 or not 0 < self.usable_fraction <= 1:
            raise ValueError("capacity must be positive and usable_fraction in (0, 1]")
        if not 0 < self.knee_soc < 1 or not 0 < self.charging_efficiency <= 1:
            raise ValueError("knee_soc must be in (0, 1) and charging_efficiency in (0, 1]")
        if not 0 < self.min_taper_w <= self.max_ac_charge_w:
            raise ValueError("min_taper_w must be in (0, max_ac_charge_w]")
        if self.battery_temp_c <= self.reference_ambient_c:
            raise ValueError("battery_temp_c must be above reference_ambient_c")
        if self.urban_wh_per_km <= 0 or self.highway_wh_per_km <= 0:
            raise ValueError("consumption must be positive")

    @property
    def usable_wh(self) -> float:
        return self.capacity_kwh * 1000.0 * self.usable_fraction


_BLUECAR_USABLE_WH: Final = 30_000.0 * 0.9

BLUECAR: Final = VehicleModel(
    name="Bolloré Bluecar",
    capacity_kwh=30.0,
    usable_fraction=0.9,
    # Calibrated so that a full car at mild temperature covers the published cycle ranges:
    # 250 km urban -> 27 000 Wh / 250 km = 108 Wh/km; 150 km highway -> 180 Wh/km.
    urban_wh_per_km=_BLUECAR_USABLE_WH / 250.0,
    highway_wh_per_km=_BLUECAR_USABLE_WH / 150.0,
    comfort_low_c=15.0,
    comfort_high_c=25.0,
    cold_penalty_per_c=0.012,
    hot_penalty_per_c=0.008,
    # 1.5 %/h of the usable energy: 0.015 × 27 000 Wh = 405 W.
    keep_warm_w=0.015 * _BLUECAR_USABLE_WH,
    self_discharge_per_h=0.015,
    battery_temp_c=80.0,
    reference_ambient_c=15.0,
    max_ac_charge_w=3000.0,
    knee_soc=0.8,
    min_taper_w=600.0,
    charging_efficiency=0.9,
    sources={
        "capacity_kwh": "Bolloré public spec, 30 kWh LMP pack (Green Car Congress 2015-06-08, 'Bolloré Bluecar EV "
                        "being assembled at Groupe Renault plant in Dieppe'; InsideEVs 2015-10-18)",
        "usable_fraction": "assumption: 90 % usable; no Bolloré figure found",
        "urban_wh_per_km": "derived: usable energy / published NEDC range, 250 km city cycle (Green Car Congress "
                           "2015; InsideEVs 2015)",
        "highway_wh_per_km": "derived: usable energy / published NEDC range, 150 km highway cycle (same sources)",
        "comfort_low_c": "assumption: cabin heating starts below 15 °C",
        "comfort_high_c": "assumption: air conditioning starts above 25 °C",
        "cold_penalty_per_c": "assumption: +1.2 %/°C below 15 °C (+18 % at 0 °C), cabin heating only; the LMP cells "
                              "are held at ~80 °C so their capacity does not depend on the weather",
        "hot_penalty_per_c": "assumption: +0.8 %/°C above 25 °C (+8 % at 35 °C)",
        "self_discharge_per_h": "Auto Moto test reported by leblogauto.com ('Les batteries d'Autolib' se déchargent "
                                "sans rouler'): full car parked unplugged at 15 °C empty after 67 h, ~1.5 %/h; a "
                                "2013 owner test (voituredufutur.blogspot.com) saw 65 % -> 45 % in 14 h (1.4 %/h)",
        "keep_warm_w": "derived + assumption: the heater makes up the same heat loss when plugged, 1.5 %/h × 27 kWh "
                       "= 405 W",
        "battery_temp_c": "LMP cells operate hot, about 80 °C (issue 4; Bolloré/BatScap LMP descriptions)",
        "reference_ambient_c": "the 15 °C outdoor temperature of the Auto Moto test",
        "max_ac_charge_w": "Autolib' posts delivered about 3 kW (issue 4); not checked against a primary Bolloré "
                           "document",
        "knee_soc": "assumption: constant power to 80 % then taper (generic CC-CV behaviour)",
        "min_taper_w": "assumption: 600 W (20 % of max) just before full",
        "charging_efficiency": "assumption: 90 % grid-to-battery for an AC on-board charger",
    },
)

#: Models by the name stored in ``vehicles.model``.
MODELS: Final[dict[str, VehicleModel]] = {"Bluecar": BLUECAR}


@dataclass(frozen=True, slots=True)
class Conditions:
    """Driving conditions. ``ambient_c`` wins over ``season``; with neither, mild weather is assumed."""

    speed_band: SpeedBand = "urban"
    ambient_c: float | None = None
    season: Season | None = None


MILD_URBAN: Final = Conditions()


def _clamp01(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def ambient_of(model: VehicleModel, conditions: Conditions) -> float:
    if conditions.ambient_c is not None:
        return conditions.ambient_c
    if conditions.season is not None:
        return SEASON_AMBIENT_C[conditions.season]
    return (model.comfort_low_c + model.comfort_high_c) / 2.0


def consumption_wh_per_km(model: VehicleModel, conditions: Conditions) -> float:
    """Energy per km taken from the battery, for the speed band, adjusted for heating / air conditioning."""
    t = ambient_of(model, conditions)
    factor = (1.0 + model.cold_penalty_per_c * max(0.0, model.comfort_low_c - t)
              + model.hot_penalty_per_c * max(0.0, t - model.comfort_high_c))
    base = model.urban_wh_per_km if conditions.speed_band == "urban" else model.highway_wh_per_km
    return base * factor


def range_km(model: VehicleModel, soc: float, conditions: Conditions = MILD_URBAN) -> float:
    """Distance the car can drive from ``soc`` down to 0 % in these conditions."""
    return _clamp01(soc) * model.usable_wh / consumption_wh_per_km(model, conditions)


def energy_for_trip_kwh(model: VehicleModel, distance_km: float, conditions: Conditions = MILD_URBAN) -> float:
    """Battery energy a trip of ``distance_km`` uses."""
    if distance_km < 0:
        raise ValueError("distance_km must be >= 0")
    return distance_km * consumption_wh_per_km(model, conditions) / 1000.0


def soc_for_range(model: VehicleModel, distance_km: float, conditions: Conditions = MILD_URBAN) -> float:
    """SoC needed to drive ``distance_km`` (may exceed 1 when the trip is out of reach)."""
    return energy_for_trip_kwh(model, distance_km, conditions) * 1000.0 / model.usable_wh


def soc_after_trip(model: VehicleModel, soc: float, distance_km: float, conditions: Conditions = MILD_URBAN) -> float:
    """SoC at the end of a trip, floored at 0 (check :func:`range_km` first to know if the trip is possible)."""
    return _clamp01(soc - soc_for_range(model, distance_km, conditions))


def thermal_factor(model: VehicleModel, ambient_c: float | None) -> float:
    """Heat loss of the hot battery relative to the reference ambient (proportional to the temperature gap)."""
    if ambient_c is None:
        return 1.0
    gap = max(0.0, model.battery_temp_c - ambient_c)
    return gap / (model.battery_temp_c - model.reference_ambient_c)


def keep_warm_power_w(model: VehicleModel, ambient_c: float | None = None) -> float:
    """Heater power a plugged-in car draws at this ambient temperature."""
    return model.keep_warm_w * thermal_factor(model, ambient_c)


def curve_power_w(model: VehicleModel, soc: float) -> float:
    """Grid-side charging power the car accepts at ``soc`` (keep-warm excluded); 0 when full."""
    if soc >= 1.0:
        return 0.0
    if soc <= model.knee_soc:
        return model.max_ac_charge_w
    slope = (model.max_ac_charge_w - model.min_taper_w) / (1.0 - model.knee_soc)
    return model.max_ac_charge_w - slope * (soc - model.knee_soc)


def charge_power_w(model: VehicleModel, soc: float, limit_w: float = math.inf) -> float:
    """Charging power at ``soc``: the charge curve capped by the connector / profile limit."""
    return max(0.0, min(limit_w, curve_power_w(model, soc)))


def _crossover_soc(model: VehicleModel, limit_w: float) -> float:
    """SoC at which the curve falls to ``limit_w``: below it the limit binds, above it the curve does."""
    if limit_w >= model.max_ac_charge_w:
        return model.knee_soc
    if limit_w <= model.min_taper_w:
        return 1.0
    slope = (model.max_ac_charge_w - model.min_taper_w) / (1.0 - model.knee_soc)
    return model.knee_soc + (model.max_ac_charge_w - limit_w) / slope


def step_charge(model: VehicleModel, soc: float, seconds: float, limit_w: float) -> tuple[float, float]:
    """Charge for ``seconds`` with grid-side charging power capped at ``limit_w`` (keep-warm excluded).

    Integrated in closed form: constant power while the limit binds, then along the linear taper
    (``dsoc/dt = η·(a − k·soc)/E``, an exponential approach), so a step may cross the 80 % knee.
    Returns ``(new_soc, energy_drawn_wh)`` with ``energy_drawn_wh × η = (new_soc − soc) × usable_wh``.
    """
    if seconds < 0:
        raise ValueError("seconds must be >= 0")
    start = _clamp01(soc)
    limit = min(limit_w, model.max_ac_charge_w)
    if start >= 1.0 or limit <= 0.0 or seconds == 0:
        return start, 0.0
    e_wh, eta = model.usable_wh, model.charging_efficiency
    hours = seconds / 3600.0
    s = start
    cross = _crossover_soc(model, limit)
    if s < cross:
        rate = eta * limit / e_wh  # SoC per hour
        if rate <= 0.0:  # a vanishing (subnormal) limit
            return start, 0.0
        need = (cross - s) / rate
        if hours <= need:
            s += rate * hours
            hours = 0.0
        else:
            s, hours = cross, hours - need
    if hours > 0 and s < 1.0:
        slope = (model.max_ac_charge_w - model.min_taper_w) / (1.0 - model.knee_soc)
        a = model.max_ac_charge_w + slope * model.knee_soc  # curve_power_w(s) = a − slope·s above the knee
        if slope == 0.0:
            s = min(1.0, s + eta * model.max_ac_charge_w * hours / e_wh)
        else:
            to_full = e_wh / (eta * slope) * math.log((a - slope * s) / (a - slope))
            decay = math.exp(-eta * slope * hours / e_wh)
            s = 1.0 if hours >= to_full else (a - (a - slope * s) * decay) / slope
    s = min(1.0, max(s, start))
    return s, (s - start) * e_wh / eta


def hours_to_soc(model: VehicleModel, soc: float, target: float, limit_w: float = math.inf) -> float:
    """Charging time from ``soc`` to ``target`` with charging power capped at ``limit_w`` (inf if unreachable)."""
    s, goal = _clamp01(soc), min(1.0, target)
    if goal <= s:
        return 0.0
    limit = min(limit_w, model.max_ac_charge_w)
    e_wh, eta = model.usable_wh, model.charging_efficiency
    if eta * limit <= 0:
        return math.inf
    cross = _crossover_soc(model, limit)
    hours = 0.0
    if s < cross:
        upto = min(goal, cross)
        hours += (upto - s) * e_wh / (eta * limit)
        s = upto
    if goal > s:
        slope = (model.max_ac_charge_w - model.min_taper_w) / (1.0 - model.knee_soc)
        if slope == 0.0:
            hours += (goal - s) * e_wh / (eta * model.max_ac_charge_w)
        else:
            a = model.max_ac_charge_w + slope * model.knee_soc
            hours += e_wh / (eta * slope) * math.log((a - slope * s) / (a - slope * goal))
    return hours


def soc_after_idle(
    model: VehicleModel,
    soc: float,
    hours: float,
    plugged: bool,
    power_available_w: float = 0.0,
    ambient_c: float | None = None,
) -> float:
    """SoC after ``hours`` parked.

    Unplugged, the battery keeps itself hot from its own charge (``self_discharge_per_h``, scaled with
    the ambient temperature). Plugged, the charge point's power goes to keep-warm first and the rest
    charges along the curve; if the power is below keep-warm, the battery makes up the difference
    (with no power at all, a plugged car behaves like an unplugged one).
    """
    if hours < 0:
        raise ValueError("hours must be >= 0")
    factor = thermal_factor(model, ambient_c)
    drain_per_h = model.self_discharge_per_h * factor
    if not plugged:
        return _clamp01(soc - drain_per_h * hours)
    keep_warm = model.keep_warm_w * factor
    available = max(0.0, power_available_w)
    if available >= keep_warm:
        return step_charge(model, soc, hours * 3600.0, available - keep_warm)[0]
    deficit_share = (keep_warm - available) / keep_warm
    return _clamp01(soc - drain_per_h * deficit_share * hours)


# --- state-of-charge estimation -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SocEstimate:
    """A state of charge with where it came from and when it held."""

    soc: float
    source: SocSource
    as_of: datetime

    def age_s(self, now: datetime) -> float:
        return (now - self.as_of).total_seconds()


@dataclass(frozen=True, slots=True)
class SocEstimator:
    """Estimator state for one docked car: the last true reading, the energy register then, and the
    charging efficiency fitted so far. Immutable: :func:`refit` returns a new one."""

    model: VehicleModel
    anchor: SocEstimate
    anchor_register_wh: float
    efficiency: float
    refits: int = 0


def start_estimator(model: VehicleModel, reading: SocEstimate, register_wh: float) -> SocEstimator:
    """Begin estimating from a reading (true or not) and the charge point's Energy.Active.Import.Register."""
    return SocEstimator(model, reading, register_wh, model.charging_efficiency)


def _keep_warm_wh(est: SocEstimator, as_of: datetime, ambient_c: float | None) -> float:
    hours = max(0.0, (as_of - est.anchor.as_of).total_seconds() / 3600.0)
    return keep_warm_power_w(est.model, ambient_c) * hours


def estimate_soc(
    est: SocEstimator, register_wh: float, as_of: datetime, ambient_c: float | None = None,
) -> SocEstimate:
    """SoC from the last reading plus the energy metered since, net of keep-warm:
    ``soc = anchor + (ΔE − keep_warm·Δt) × efficiency ÷ usable`` (a shortfall below keep-warm is
    taken from the battery, without the efficiency). Source ``metered``."""
    net_wh = (register_wh - est.anchor_register_wh) - _keep_warm_wh(est, as_of, ambient_c)
    gain = net_wh * est.efficiency if net_wh > 0 else net_wh
    return SocEstimate(_clamp01(est.anchor.soc + gain / est.model.usable_wh), "metered", as_of)


#: Net charged energy below which an efficiency re-fit is not attempted (meter and SoC resolution).
MIN_REFIT_WH: Final = 1000.0
#: Weight of a new efficiency observation in the running fit.
REFIT_WEIGHT: Final = 0.5
EFFICIENCY_BOUNDS: Final = (0.5, 1.0)


def refit(
    est: SocEstimator, reading: SocEstimate, register_wh: float, ambient_c: float | None = None,
) -> SocEstimator:
    """Take a true reading (``measured`` or ``telematics``): re-anchor on it, and when enough energy
    was charged since the last true anchor, update the efficiency toward the observed
    ``ΔSoC × usable ÷ net energy`` (bounded, exponentially weighted). Non-true readings are ignored."""
    if reading.source not in TRUE_SOURCES:
        return est
    efficiency = est.efficiency
    net_wh = (register_wh - est.anchor_register_wh) - _keep_warm_wh(est, reading.as_of, ambient_c)
    gained_wh = (reading.soc - est.anchor.soc) * est.model.usable_wh
    # A full car stops absorbing energy, so the observation says nothing about efficiency then.
    if est.anchor.source in TRUE_SOURCES and net_wh >= MIN_REFIT_WH and reading.soc < 1.0 and gained_wh > 0:
        observed = min(EFFICIENCY_BOUNDS[1], max(EFFICIENCY_BOUNDS[0], gained_wh / net_wh))
        efficiency = (1 - REFIT_WEIGHT) * efficiency + REFIT_WEIGHT * observed
    return SocEstimator(est.model, reading, register_wh, efficiency, est.refits + 1)
