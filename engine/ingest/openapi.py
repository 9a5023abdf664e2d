"""The OpenAPI 3.1 document of the ingestion API, generated from the record schema."""
from __future__ import annotations

from engine.core.config import Settings
from engine.ingest.schema import SPECS, Field, RecordSpec

_KIND_SCHEMAS = {
    "id": {"type": "string", "minLength": 1, "maxLength": 128},
    "text": {"type": "string"},
    "email": {"type": "string", "format": "email"},
    "phone": {"type": "string", "pattern": r"^\+[1-9][0-9]{6,14}$"},
    "tz": {"type": "string", "description": "IANA timezone"},
    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    "minor": {"type": "integer", "minimum": 0, "description": "Money in minor units"},
    "posint": {"type": "integer", "minimum": 1},
    "bool": {"type": "boolean"},
    "ts": {"type": "string", "format": "date-time", "description": "ISO 8601 with an offset (Z or +08:00)"},
    "url": {"type": "string", "format": "uri", "maxLength": 2000},
}


def _field_schema(f: Field) -> dict:
    if f.kind == "list":
        schema = {"type": "array", "items": _record_schema(f.item)}
        if f.min_items:
            schema["minItems"] = f.min_items
    elif f.kind == "enum":
        schema = {"type": "string", "enum": list(f.choices)}
    else:
        schema = dict(_KIND_SCHEMAS[f.kind])
        if f.max_len:
            schema["maxLength"] = f.max_len
        if f.max_value is not None:
            schema["maximum"] = f.max_value
    if f.description:
        schema["description"] = (schema.get("description", "") + ". " if "description" in schema else "") + f.description
    if f.default is not None:
        schema["default"] = f.default
    return schema


def _record_schema(spec: RecordSpec) -> dict:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {f.name: _field_schema(f) for f in spec.fields},
        "required": [f.name for f in spec.fields if f.required],
    }
    if spec.description:
        schema["description"] = spec.description
    return schema


def _name(resource: str) -> str:
    return "".join(p.capitalize() for p in resource.split("_")).rstrip("s")


def openapi_document(settings: Settings) -> dict:
    schemas = {_name(r): _record_schema(s) for r, s in SPECS.items()}
    schemas["Problem"] = {"type": "object", "properties": {
        "resource": {"type": "string"}, "index": {"type": ["integer", "null"]},
        "external_id": {"type": ["string", "null"]}, "field": {"type": "string"}, "reason": {"type": "string"}},
        "required": ["resource", "index", "external_id", "field", "reason"]}
    schemas["Error"] = {"type": "object", "properties": {
        "error": {"type": "string"}, "message": {"type": "string"},
        "problems": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}}},
        "required": ["error", "message"]}
    counts = {"type": "object", "properties": {k: {"type": "integer"} for k in ("inserted", "updated", "unchanged", "stale")}}
    schemas["BatchResult"] = {"type": "object", "properties": {
        "batch_id": {"type": "string"}, "records": {"type": "integer"}, "accepted": {"type": "integer"},
        "counts": {"type": "object", "additionalProperties": counts},
        "warnings": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}}}}
    schemas["Batch"] = {
        "type": "object", "additionalProperties": False,
        "description": "Sections are applied in this order, so a record may refer to one sent earlier in the same batch.",
        "properties": {r: {"type": "array", "items": {"$ref": f"#/components/schemas/{_name(r)}"}} for r in SPECS}
        | {"merchant_id": {"type": "string", "description": "Optional; if given it must be the key's own merchant."}},
    }

    def err(desc: str) -> dict:
        return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

    responses = {
        "200": {"description": "Batch accepted and written.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchResult"}}}},
        "400": err("The body is not JSON of the expected shape."),
        "401": err("Missing, unknown or revoked API key."),
        "403": err("The batch names another merchant."),
        "409": err("A concurrent batch wrote the same records; retry."),
        "413": err(f"Too large: more than {settings.api_max_records} records, {settings.api_max_order_lines} order lines or {settings.api_max_body_bytes} bytes."),
        "415": err("Content-Type is not application/json."),
        "422": err("One or more records are invalid; every problem is listed and nothing was written."),
    }
    paths = {
        "/batch": {"post": {
            "summary": "Upsert a batch of several kinds of records, all or nothing.",
            "operationId": "postBatch",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}}},
            "responses": responses}},
        "/batches": {"get": {
            "summary": "The merchant's recent batches, accepted and rejected.", "operationId": "listBatches",
            "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}}],
            "responses": {"200": {"description": "Recent batches."}, "401": responses["401"]}}},
    }
    for r in SPECS:
        paths[f"/{r}"] = {"post": {
            "summary": f"Upsert {r.replace('_', ' ')}, all or nothing.",
            "operationId": f"post{_name(r)}s",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "oneOf": [{"type": "array", "items": {"$ref": f"#/components/schemas/{_name(r)}"}},
                          {"type": "object", "properties": {"records": {"type": "array", "items": {"$ref": f"#/components/schemas/{_name(r)}"}}}, "required": ["records"]}]}}}},
            "responses": responses}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Repurchase engine ingestion API", "version": "1",
                 "description": (
                     "Send your customers, products, promotion plans, carts, orders, refunds and consent changes. "
                     "Every record is keyed by your own id; sending the same batch twice changes nothing, and a "
                     "later version (updated_at) updates a record. A batch is all or nothing: a 422 lists every "
                     "bad record, field and reason. Money is integer minor units in your currency; timestamps "
                     "are ISO 8601 with an offset. Order lines and promotions must name products you have already "
                     "sent (earlier, or earlier in the same batch): unknown products are refused, not created.")},
        "servers": [{"url": "/api/v1"}],
        "components": {"schemas": schemas, "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}}},
        "security": [{"apiKey": []}],
        "paths": paths,
    }
