"""The OpenAPI 3.1 document, built from the routes: request and response bodies as JSON Schema
generated from their typed models (msgspec Structs: api/models.py and the request classes), every
path and query parameter, the paging Link header, and problem+json for every error."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from voltlib.api.framework import Query, Route
from voltlib.api.models import ProblemDetails
from voltlib.api.paging import MAX_PAGE

PROBLEM = {"$ref": "#/components/responses/Problem"}
PAGE_QUERY = (Query("limit", int, f"rows per page, 1 to {MAX_PAGE} (a larger value reads as {MAX_PAGE})", 1,
                    MAX_PAGE),
              Query("cursor", str, "where to continue: from the Link rel=next of the previous page (opaque)"))
LINK = {"Link": {"description": 'RFC 8288: <the next page>; rel="next", absent on the last page',
                 "schema": {"type": "string"}}}


def _query_schema(query: Query) -> dict[str, Any]:
    kind = query.kind
    if isinstance(kind, tuple):
        return {"type": "string", "enum": list(kind)}
    if kind is datetime:
        return {"type": "string", "format": "date-time"}
    schema = {str: {"type": "string"}, int: {"type": "integer"}, float: {"type": "number"},
              bool: {"type": "boolean"}}[kind]
    bounds = {"minimum": query.low, "maximum": query.high}
    return schema | {k: int(v) if kind is int else v for k, v in bounds.items() if v is not None}


def openapi(routes: list[Route], version: str) -> dict[str, Any]:
    types: list[Any] = [ProblemDetails]
    for route in routes:
        types += [k for k in (route.body, route.returns) if k is not None]
    schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    schema_of = dict(zip([repr(k) for k in types], schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        ok: dict[str, Any] = {"description": "OK"}
        if route.returns_media is not None:
            ok["content"] = {route.returns_media: {"schema": {"type": "string"}}}
        elif route.returns is not None:
            ok["content"] = {"application/json": {"schema": schema_of[repr(route.returns)]}}
        if route.paged:
            ok["headers"] = LINK
        op: dict[str, Any] = {"summary": route.summary, "tags": [route.tag], "operationId": _operation_id(route),
                              "responses": {str(route.status): ok, "4XX": PROBLEM, "5XX": PROBLEM}}
        parameters = [{"name": p[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
                      for p in route.path.split("/") if p.startswith("{")]
        for query in (*route.query, *(PAGE_QUERY if route.paged else ())):
            parameters.append({"name": query.name, "in": "query", "required": False,
                               "schema": _query_schema(query),
                               **({"description": query.description} if query.description else {})})
        if parameters:
            op["parameters"] = parameters
        if route.unpaged:
            op["x-unpaged"] = route.unpaged  # a list whole in one answer, and why it stays small
        if route.body_media is not None:
            op["requestBody"] = {"required": True, "content": {route.body_media: {"schema": {"type": "string"}}}}
        elif route.body is not None:
            op["requestBody"] = {"required": True,
                                 "content": {"application/json": {"schema": schema_of[repr(route.body)]}}}
        elif route.method in ("POST", "PUT"):
            op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
        if route.roles is not None:
            op["security"] = [{"bearer": []}]
            op["description"] = "Roles: " + ", ".join(sorted(route.roles))
            op["x-roles"] = sorted(route.roles)  # machine-readable, for clients and the role-matrix test
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {"openapi": "3.1.0", "info": {"title": "voltlib", "version": version},
            "paths": paths,
            "components": {
                "schemas": components,
                "responses": {"Problem": {"description": "An RFC 9457 problem",
                                          "content": {"application/problem+json": {
                                              "schema": {"$ref": "#/components/schemas/ProblemDetails"}}}}},
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}


def _operation_id(route: Route) -> str:
    """A stable, unique name for generated clients: the method and the path's words."""
    words = [w.strip("{}").replace("-", "_") for w in route.path.removeprefix("/api/v1/").split("/") if w]
    return "_".join([route.method.lower(), *words]).replace(".", "_")
