"""The ingestion API, ``/api/v1``: JSON batches authenticated by a merchant API key.

Deny by default: every route but the OpenAPI document needs a valid key, and the merchant is the
key's merchant, never something named in the URL or the body. A batch is all or nothing.
"""
from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy.exc import IntegrityError, OperationalError

from engine.core.db import unit_of_work
from engine.core.dbstats import INGEST_TABLES, refresh_planner_stats
from engine.core.errors import Unauthorized
from engine.core.runtime import runtime
from engine.ingest.context import MerchantRef
from engine.ingest.openapi import openapi_document
from engine.ingest.schema import SPECS
from engine.ingest.services import ingest_batch, record_batch, recent_batches
from engine.tenancy.services import authenticate_api_key

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
PUBLIC_ENDPOINTS = {"api_v1.openapi"}


def _error(status: int, code: str, message: str, **extra) -> Response:
    resp = jsonify({"error": code, "message": message, **extra})
    resp.status_code = status
    return resp


@bp.before_request
def _authenticate():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    rt = runtime()
    if request.content_length is not None and request.content_length > rt.settings.api_max_body_bytes:
        return _error(413, "batch_too_large", f"request body is {request.content_length} bytes; the limit is {rt.settings.api_max_body_bytes}")
    header = request.headers.get("Authorization", "")
    key = header[7:].strip() if header.startswith("Bearer ") else request.headers.get("X-Api-Key")
    try:
        with unit_of_work(rt.sessions) as s:
            m = authenticate_api_key(s, key)
            g.merchant = MerchantRef(m.id, m.currency, m.timezone)
            g.merchant_public_id = m.public_id
    except Unauthorized as exc:
        resp = _error(401, "unauthorized", str(exc))
        resp.headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return resp
    return None


@bp.errorhandler(404)
def _not_found(_e):
    return _error(404, "not_found", f"no such endpoint: {request.method} {request.path}")


@bp.errorhandler(405)
def _not_allowed(_e):
    return _error(405, "method_not_allowed", f"{request.method} is not allowed on {request.path}")


@bp.errorhandler(413)
def _too_large(_e):
    return _error(413, "batch_too_large", f"request body exceeds {runtime().settings.api_max_body_bytes} bytes")


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(runtime().settings))


@bp.get("/batches")
def batches():
    with unit_of_work(runtime().sessions) as s:
        rows = recent_batches(s, g.merchant.id, limit=min(int(request.args.get("limit", 20)), 100))
        return jsonify({"batches": [{
            "id": b.public_id, "source": b.source, "status": b.status, "received_at": b.received_at.isoformat(),
            "records": b.records, "rejected": b.rejected, "counts": b.counts, "problems": b.problems,
        } for b in rows]})


@bp.post("/batch")
def post_batch():
    body = _json_body()
    if isinstance(body, Response):
        return body
    if not isinstance(body, dict):
        return _error(400, "bad_request", "the body must be a JSON object such as {\"orders\": [...]}")
    unknown = sorted(set(body) - set(SPECS) - {"merchant_id"})
    if unknown:
        return _error(422, "invalid_batch", f"unknown section(s): {', '.join(unknown)}; expected some of {', '.join(SPECS)}",
                      problems=[{"resource": k, "index": None, "external_id": None, "field": "", "reason": "unknown section"} for k in unknown])
    return _ingest({k: v for k, v in body.items() if k in SPECS}, body.get("merchant_id"))


@bp.post("/<resource>")
def post_resource(resource: str):
    if resource not in SPECS:
        return _error(404, "not_found", f"no such resource {resource!r}; expected one of {', '.join(SPECS)}")
    body = _json_body()
    if isinstance(body, Response):
        return body
    records = body.get("records") if isinstance(body, dict) else body
    if not isinstance(records, list):
        return _error(400, "bad_request", "the body must be a JSON list of records or {\"records\": [...]}")
    return _ingest({resource: records}, body.get("merchant_id") if isinstance(body, dict) else None)


def _json_body():
    if not request.is_json:
        return _error(415, "unsupported_media_type", "send Content-Type: application/json")
    body = request.get_json(silent=True)
    if body is None:
        return _error(400, "bad_request", "the body is not valid JSON")
    return body


def _ingest(batch: dict, named_merchant) -> Response:
    rt = runtime()
    merchant: MerchantRef = g.merchant
    if named_merchant is not None and named_merchant != g.merchant_public_id:
        return _error(403, "forbidden", "merchant_id names another merchant; an API key can only write its own merchant's data")
    for resource, records in batch.items():
        if not isinstance(records, list):
            return _error(400, "bad_request", f"section {resource!r} must be a list of records")
    n_records = sum(len(v) for v in batch.values())
    if n_records > rt.settings.api_max_records:
        return _error(413, "batch_too_large", f"{n_records} records in one batch; the limit is {rt.settings.api_max_records}; split it")
    n_lines = sum(len(o.get("lines") or []) for o in batch.get("orders", []) if isinstance(o, dict) and isinstance(o.get("lines"), list))
    if n_lines > rt.settings.api_max_order_lines:
        return _error(413, "batch_too_large", f"{n_lines} order lines in one batch; the limit is {rt.settings.api_max_order_lines}; split it")
    if n_records == 0:
        return _error(422, "invalid_batch", "the batch is empty", problems=[])

    for attempt in (1, 2):
        now = rt.clock.now()
        session = rt.sessions()
        try:
            result = ingest_batch(session, merchant, batch, now=now)
            if result.problems:
                session.rollback()
                break
            batch_id = record_batch(session, merchant.id, source="api", status="accepted", now=now, records=result.records,
                                    rejected=0, counts={k: v.as_dict() for k, v in result.counts.items()}, problems=[])
            session.commit()
            if n_records + n_lines >= 1000:  # a bulk write: keep foreign-key check plans sane (see dbstats)
                refresh_planner_stats(rt.engine, INGEST_TABLES)
            return jsonify({"batch_id": batch_id, **result.as_dict()})
        except (IntegrityError, OperationalError):
            # A concurrent batch wrote the same ids (or held a lock) first: run the batch once
            # more against what is now committed; it then updates or finds things unchanged.
            session.rollback()
            if attempt == 2:
                return _error(409, "conflict", "a concurrent batch wrote the same records; retry this batch")
        finally:
            session.close()

    with unit_of_work(rt.sessions) as s:
        batch_id = record_batch(s, merchant.id, source="api", status="rejected", now=now, records=result.records,
                                rejected=len({(p.resource, p.index) for p in result.problems}), counts={},
                                problems=result.problems)
    return _error(422, "invalid_batch",
                  f"{len(result.problems)} problem(s) in {len({(p.resource, p.index) for p in result.problems})} record(s); nothing was written",
                  batch_id=batch_id, problems=[p.as_dict() for p in result.problems])
