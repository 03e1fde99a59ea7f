"""Build the dashboard's offline Paris basemap (src/voltlib/web/static/basemap/paris.json) from
Paris Open Data's "arrondissements" GeoJSON export (ODbL 1.0).

    python tools/paris_basemap.py arrondissements.geojson

Each arrondissement's outline is simplified (Douglas-Peucker, TOLERANCE degrees, about 4 m) and its
coordinates rounded to 5 decimals (about 1 m). The Seine is the limit between right-bank and
left-bank arrondissements, which the city draws in the middle of the river: the edges that a
right-bank and a left-bank outline share, chained into lines and simplified the same way.
How the file was obtained and its licence: src/voltlib/web/static/basemap/README.md.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

TOLERANCE = 0.00004
DECIMALS = 5
RIGHT_BANK = {1, 2, 3, 4, 8, 9, 10, 11, 12, 16, 17, 18, 19, 20}
OUT = Path(__file__).resolve().parents[1] / "src/voltlib/web/static/basemap/paris.json"

Point = tuple[float, float]


def simplify(points: list[Point], tolerance: float = TOLERANCE) -> list[Point]:
    """Douglas-Peucker: keep the point farthest from the chord while it is farther than tolerance."""
    if len(points) < 3:
        return points
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        (x1, y1), (x2, y2) = points[first], points[last]
        dx, dy = x2 - x1, y2 - y1
        norm = (dx * dx + dy * dy) ** 0.5
        far, index = 0.0, -1
        for i in range(first + 1, last):
            x, y = points[i]
            d = abs(dy * (x - x1) - dx * (y - y1)) / norm if norm else ((x - x1) ** 2 + (y - y1) ** 2) ** 0.5
            if d > far:
                far, index = d, i
        if far > tolerance:
            keep[index] = True
            stack += [(first, index), (index, last)]
    return [p for p, k in zip(points, keep, strict=True) if k]


def rounded(points: list[Point]) -> list[list[float]]:
    out: list[list[float]] = []
    for x, y in points:
        p = [round(x, DECIMALS), round(y, DECIMALS)]
        if not out or out[-1] != p:
            out.append(p)
    return out


def ring_of(feature: dict) -> list[Point]:
    geometry = feature["geometry"]
    assert geometry["type"] == "Polygon", geometry["type"]  # each arrondissement is one polygon
    return [(x, y) for x, y in geometry["coordinates"][0]]


def river(rings: dict[int, list[Point]]) -> list[list[Point]]:
    """The edges shared by a right-bank and a left-bank outline, chained into lines."""
    def edges(ring: list[Point]) -> set[frozenset[Point]]:
        return {frozenset((a, b)) for a, b in itertools.pairwise(ring) if a != b}

    right = set().union(*(edges(r) for n, r in rings.items() if n in RIGHT_BANK))
    left = set().union(*(edges(r) for n, r in rings.items() if n not in RIGHT_BANK))
    shared = [tuple(e) for e in right & left]
    neighbours: dict[Point, list[Point]] = {}
    for a, b in shared:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    seen: set[frozenset[Point]] = set()
    lines = []
    for start in sorted(p for p, n in neighbours.items() if len(n) == 1):  # line ends
        line = [start]
        while True:
            nxt = [p for p in neighbours[line[-1]] if frozenset((line[-1], p)) not in seen]
            if not nxt:
                break
            seen.add(frozenset((line[-1], nxt[0])))
            line.append(nxt[0])
        if len(line) > 1:
            lines.append(line)
    return lines


def main(source: str) -> None:
    features = json.loads(Path(source).read_text())["features"]
    rings = {int(f["properties"]["c_ar"]): ring_of(f) for f in features}
    names = {int(f["properties"]["c_ar"]): f["properties"]["l_aroff"] for f in features}
    out = [{"type": "Feature", "properties": {"kind": "district", "number": n, "name": names[n]},
            "geometry": {"type": "Polygon", "coordinates": [rounded(simplify(rings[n]))]}} for n in sorted(rings)]
    out.append({"type": "Feature", "properties": {"kind": "river", "name": "Seine"},
                "geometry": {"type": "MultiLineString",
                             "coordinates": [rounded(simplify(line)) for line in river(rings)]}})
    collection = {"type": "FeatureCollection",
                  "attribution": "Arrondissements and the Seine: Ville de Paris, Paris Open Data (ODbL 1.0)",
                  "features": out}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(collection, separators=(",", ":"), ensure_ascii=False) + "\n")
    print(f"{OUT}: {OUT.stat().st_size} bytes, {sum(len(f['geometry']['coordinates'][0]) for f in out[:-1])} "
          f"outline points, {len(out[-1]['geometry']['coordinates'])} river line(s)")


if __name__ == "__main__":
    main(sys.argv[1])
