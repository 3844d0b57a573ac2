"""The intake API, ``/api/v1``: CRMs and web forms push consents, withdrawals, opt-outs,
objections and complaints; read a decision; scrub a small batch.

Invariants: every request but the OpenAPI document needs a bearer token (stored hashed);
bodies are JSON objects of at most ``MAX_CONTENT_LENGTH`` bytes; every field is validated and
all problems are reported at once as ``400 {"error": "validation_failed", "fields": {...}}``
with nothing written; unknown fields are rejected, so a misspelt field is never ignored.
The routes here and ``dashboard/openapi.json`` describe the same API (a test holds them together).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from flask import Blueprint, Response, abort, current_app, g, jsonify, request

from callscreen.codec import iso as _iso
from callscreen.complaints import CHANNELS, ComplaintError
from callscreen.models import CONSENT_SOURCES, OPT_OUT_SOURCES, Consent, LegalBasis, Objection, OptOut, Proof
from callscreen.numbers import MAX_INPUT_LENGTH, mask
from callscreen.records import with_current_ids
from callscreen.store import StoreError, new_id
from dashboard.extensions import api_limit, limiter
from dashboard.formatting import masked_number
from dashboard.services import services
from dashboard.validation import Fields, ValidationError

bp = Blueprint("api", __name__, url_prefix="/api/v1")
OPENAPI_PATH = Path(__file__).with_name("openapi.json")
MAX_SCRUB = 1000
CONSENT_CHANNELS = ("voice", "sms", "email")
PROOF_FIELDS = ("ip", "user_agent", "form_text", "form_version", "page_url", "recording_id", "document_id")
PUBLIC_ENDPOINTS = {"api.openapi"}


def _token_key() -> str:
    header = request.headers.get("Authorization", "")
    return "api:" + hashlib.sha256(header.encode("utf-8", "surrogatepass")).hexdigest()[:24]


limiter.limit(api_limit, key_func=_token_key)(bp)


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.fields = status, error, message, fields


@bp.errorhandler(ApiError)
def api_error(exc: ApiError) -> Any:
    body: dict[str, Any] = {"error": exc.error, "message": exc.message}
    if exc.fields:
        body["fields"] = exc.fields
    response = jsonify(body)
    response.status_code = exc.status
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="callscreen"'
    return response


@bp.errorhandler(StoreError)
@bp.errorhandler(redis.RedisError)
def store_error(exc: Exception) -> Any:
    """The store (or the decision log in it) refused: nothing was answered from it, retry later."""
    return api_error(ApiError(503, "store_unavailable", "the store is unavailable; retry later"))


@bp.errorhandler(ValidationError)
def validation_error(exc: ValidationError) -> Any:
    return api_error(ApiError(400, "validation_failed", "some fields are not valid", exc.errors))


@bp.before_request
def authenticate() -> None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>'")
    token = services().tokens.verify(secret.strip())
    if token is None:
        raise ApiError(401, "unauthorized", "unknown or revoked token")
    g.api_client = token.client


def _body() -> Fields:
    """The request body as a JSON object, or a clean 4xx."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
    raw = _read_body(current_app.config["MAX_CONTENT_LENGTH"])

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        data = json.loads(raw, parse_constant=refuse_constant)
    except (ValueError, RecursionError) as exc:
        message = "body is not valid JSON" if not isinstance(exc, RecursionError) else "body is nested too deeply"
        raise ApiError(400, "invalid_json", message) from exc
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "body must be a JSON object")
    return Fields(data)


def _read_body(limit: int) -> bytes:
    """The request body, read at most ``limit + 1`` bytes deep: more than ``limit`` is 413.
    A chunked body has no Content-Length to refuse up front, and a plain read of the bounded
    stream stops quietly at the limit, leaving a truncated body."""
    data = bytearray()
    while len(data) <= limit:
        chunk = request.stream.read(limit + 1 - len(data))  # werkzeug's bounded stream may raise 413 itself
        if not chunk:
            break
        data += chunk
    if len(data) > limit:
        abort(413)
    return bytes(data)


def _created(payload: dict[str, Any], status: int = 201) -> Any:
    response = jsonify(payload)
    response.status_code = status
    return response


def _proof(fields: Fields) -> Proof:
    proof = fields.nested("proof")
    proof.only(PROOF_FIELDS)
    ip = proof.text("ip", max_len=45)
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            proof.fail("ip", "not an IP address")
    page_url = proof.text("page_url", max_len=2000)
    if page_url:
        parts = urlsplit(page_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            proof.fail("page_url", "must be an http(s) URL")
    return Proof(
        ip=ip, user_agent=proof.text("user_agent", max_len=500),
        form_text=proof.text("form_text", max_len=20_000, multiline=True),
        form_version=proof.text("form_version", max_len=100), page_url=page_url,
        recording_id=proof.text("recording_id", max_len=200), document_id=proof.text("document_id", max_len=200),
    )


@bp.route("/consents", methods=["POST"])
def add_consent() -> Any:
    """Record a consent (or an existing relationship / legitimate interest) with its proof."""
    svc = services()
    fields = _body()
    fields.only(("id", "number", "purposes", "basis", "source", "captured_at", "channel", "verified_at",
                 "expires_at", "relationship", "proof"))
    consent_id = fields.token("id")
    number = fields.number("number", svc.settings.default_region)
    purposes = fields.strings("purposes", required=True)
    basis = fields.choice("basis", [b.value for b in LegalBasis], default=LegalBasis.CONSENT.value)
    source = fields.choice("source", CONSENT_SOURCES, required=True)
    captured_at = fields.when("captured_at", required=True, not_future=True)
    channel = fields.choice("channel", CONSENT_CHANNELS, default="voice")
    verified_at = fields.when("verified_at", not_future=True)
    expires_at = fields.when("expires_at")
    relationship = fields.choice("relationship", ("purchase", "inquiry"))
    proof = _proof(fields)
    if basis == LegalBasis.EXISTING_RELATIONSHIP.value and not relationship:
        fields.fail("relationship", "required for an existing relationship: purchase or inquiry")
    if basis == LegalBasis.CONSENT.value and not (proof.form_text or proof.form_version or proof.recording_id
                                                  or proof.document_id):
        fields.fail("proof", "a consent needs evidence: form_text, form_version, recording_id or document_id")
    if source == "web_form" and basis == LegalBasis.CONSENT.value and not proof.ip:
        fields.fail("proof.ip", "required for a web form consent")
    if captured_at and expires_at and expires_at <= captured_at:
        fields.fail("expires_at", "must be after captured_at")
    if captured_at and verified_at and verified_at < captured_at:
        fields.fail("verified_at", "cannot be before captured_at")
    fields.check()
    consent_id = consent_id or new_id("con")
    if svc.store.get_consent(consent_id) is not None:
        raise ApiError(409, "conflict", f"consent {consent_id} already exists")
    assert number is not None and captured_at is not None
    consent = svc.store.add_consent(number, Consent(
        id=consent_id, number_digest="", purposes=purposes, basis=LegalBasis(basis), source=source,
        captured_at=captured_at, channel=channel, proof=proof, verified_at=verified_at, expires_at=expires_at,
        relationship=relationship,
    ))
    return _created({"id": consent.id, "number_masked": mask(number.e164), "purposes": list(purposes),
                     "basis": basis, "recorded_at": _iso(consent.recorded_at)})


@bp.route("/withdrawals", methods=["POST"])
def add_withdrawal() -> Any:
    """Withdraw one consent (by id) or every active consent of a number (optionally for one purpose)."""
    svc = services()
    fields = _body()
    fields.only(("number", "consent_id", "purpose", "how"))
    number = fields.number("number", svc.settings.default_region)
    consent_id = fields.token("consent_id")
    purpose = fields.token("purpose")
    how = fields.text("how", required=True, max_len=200)
    if consent_id and purpose:
        fields.fail("purpose", "give consent_id or purpose, not both")
    fields.check()
    assert number is not None
    how = f"{how} (via API: {g.api_client})"
    if consent_id:
        consent = svc.store.get_consent(consent_id)
        if consent is None or consent.number_digest != svc.vault.digest(number.e164):
            raise ApiError(404, "not_found", "no such consent for this number")
        withdrawn = [svc.store.withdraw_consent(consent_id, how)]
    else:
        withdrawn = svc.store.withdraw_all(number, how, purpose or None)
    return _created({"withdrawn": [c.id for c in withdrawn], "number_masked": mask(number.e164)}, 200)


@bp.route("/opt-outs", methods=["POST"])
def add_opt_out() -> Any:
    """Record a "do not call me": company-wide, or for one campaign."""
    svc = services()
    fields = _body()
    fields.only(("number", "campaign_id", "source", "at", "note"))
    number = fields.number("number", svc.settings.default_region)
    campaign_id = fields.token("campaign_id")
    source = fields.choice("source", OPT_OUT_SOURCES, default="api")
    at = fields.when("at", not_future=True)
    note = fields.text("note", max_len=500)
    if campaign_id and svc.store.get_campaign(campaign_id) is None:
        fields.fail("campaign_id", "unknown campaign")
    fields.check()
    assert number is not None
    svc.store.add_opt_out(number, OptOut(campaign_id or None, source, at or datetime.now(UTC), note))
    return _created({"number_masked": mask(number.e164), "scope": campaign_id or "company"})


@bp.route("/objections", methods=["POST"])
def add_objection() -> Any:
    """Record an objection to processing for direct marketing (GDPR art. 21)."""
    svc = services()
    fields = _body()
    fields.only(("number", "source", "at", "scope"))
    number = fields.number("number", svc.settings.default_region)
    source = fields.choice("source", OPT_OUT_SOURCES, default="api")
    at = fields.when("at", not_future=True)
    scope = fields.choice("scope", ("direct_marketing",), default="direct_marketing")
    fields.check()
    assert number is not None
    svc.store.add_objection(number, Objection(at=at or datetime.now(UTC), source=source, scope=scope))
    return _created({"number_masked": mask(number.e164), "scope": scope})


@bp.route("/complaints", methods=["POST"])
def add_complaint() -> Any:
    """File a complaint: the number is suppressed for every campaign at once."""
    svc = services()
    fields = _body()
    fields.only(("number", "call_at", "channel", "caller_name", "said"))
    number = fields.number("number", svc.settings.default_region)
    call_at = fields.when("call_at", required=True, not_future=True)
    channel = fields.choice("channel", CHANNELS, default="api")
    caller_name = fields.text("caller_name", max_len=200)
    said = fields.text("said", max_len=5000, multiline=True)
    fields.check()
    assert number is not None and call_at is not None
    try:
        complaint = svc.complaints.file(number, call_at, channel, caller_name=caller_name, said=said,
                                        filed_by=f"api:{g.api_client}")
    except ComplaintError as exc:
        raise ApiError(400, "validation_failed", str(exc), {"channel": str(exc)}) from exc
    return _created({"id": complaint.id, "status": complaint.status.value, "suppressed": True,
                     "linked_decisions": list(complaint.linked_decisions),
                     "received_at": _iso(complaint.received_at)})


@bp.route("/decisions/<decision_id>", methods=["GET"])
def get_decision(decision_id: str) -> Any:
    """One decision as logged, with its basis and trace; the number masked."""
    svc = services()
    record = svc.log.get(decision_id) if len(decision_id) <= 64 else None
    if record is None or record.kind != "decision":
        raise ApiError(404, "not_found", "no such decision")
    record = with_current_ids(svc.store, record)
    return jsonify({
        "id": record.id, "at": _iso(record.at), "campaign_id": record.campaign_id,
        "number_masked": masked_number(record.number_digest, record.number_sealed),
        "result": record.result, "reason": record.reason, "basis": record.basis,
        "policy_pack": record.policy_pack, "policy_version": record.policy_version,
        "timezone": record.timezone, "origin": record.origin,
        "checks": [{"name": c[0], "passed": c[1], "detail": c[2]} for c in record.checks],
        "outcome": svc.log.outcome_of(record.id),
    })


@bp.route("/scrub", methods=["POST"])
def scrub() -> Any:
    """Screen up to 1000 numbers for a campaign without logging them as attempts (a dry run);
    one summary record of the batch goes to the decision log."""
    svc = services()
    fields = _body()
    fields.only(("campaign_id", "numbers", "at"))
    campaign_id = fields.token("campaign_id", required=True)
    at = fields.when("at")
    numbers = fields.data.get("numbers")
    if not isinstance(numbers, list) or not numbers:
        fields.fail("numbers", "required: a list of 1 to 1000 numbers")
        numbers = []
    elif len(numbers) > MAX_SCRUB:
        fields.fail("numbers", f"at most {MAX_SCRUB} numbers per request")
    else:
        for index, item in enumerate(numbers):
            if not isinstance(item, str):
                fields.errors.setdefault(f"numbers[{index}]", "must be text")
            elif len(item) > MAX_INPUT_LENGTH:
                fields.errors.setdefault(f"numbers[{index}]", f"at most {MAX_INPUT_LENGTH} characters")
    if campaign_id and svc.store.get_campaign(campaign_id) is None:
        fields.fail("campaign_id", "unknown campaign")
    fields.check()
    results = []
    tally: Counter[str] = Counter()
    for raw in numbers:
        decision = svc.screener.screen(raw, campaign_id, at, origin="api-scrub", dry_run=True)
        tally[decision.result.value] += 1
        results.append({"number": raw, "result": decision.result.value, "reason": decision.reason.value,
                        "basis": decision.basis.short() if decision.basis else None})
    summary = svc.log.append_summary("scrub", {"client": g.api_client, "numbers": len(numbers),
                                               "allowed": tally["ALLOW"], "blocked": tally["BLOCK"]},
                                     campaign_id=campaign_id, origin="api")
    return jsonify({"campaign_id": campaign_id, "summary_id": summary.id,
                    "allowed": tally["ALLOW"], "blocked": tally["BLOCK"], "results": results})


@bp.route("/openapi.json", methods=["GET"])
def openapi() -> Any:
    """The API description (OpenAPI 3.1), served from the copy kept in the repository."""
    return Response(OPENAPI_PATH.read_bytes(), mimetype="application/json")


