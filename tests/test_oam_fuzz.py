"""The OAM API fuzzed from its own published schema (schemathesis, in process, over the
in-memory store): no 5xx, every response inside the schema, and no route answering
without the token or with a wrong one, whatever the request looks like (the token is
checked before the body is read: bad JSON without a token is 401, not 400 or 422)."""
from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (content_type_conformance, not_a_server_error,
                                 response_schema_conformance, status_code_conformance)

from emulator.host.tboamapp import create_app
from oam_fakes import FakeLinks, FakeStore, settings as host_settings

S = host_settings()
AUTH = {"Authorization": f"Bearer {S.oam_token}"}
CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance)


def app():
    store = FakeStore()
    # an engine that applies a reload at once: the fuzzer is not left waiting on one
    store.engine = lambda rid: {"ok": True, "version": rid, "units": {}}
    links = FakeLinks()
    # a gateway that answers as the real one does: no calls, an unknown call refused
    links.gateway_fn = lambda msg: ({"ok": True, "role": "active", "calls": [], "more": False}
                                    if msg["op"] == "calls" else
                                    {"ok": False, "code": 404, "error": "no such call"})
    return create_app(S, store, links)


# FastAPI publishes OpenAPI 3.1, which schemathesis 3 reads behind this switch
schemathesis.experimental.OPEN_API_3_1.enable()
schema = schemathesis.from_asgi("/openapi.json", app())
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@schema.parametrize(data_generation_methods=schemathesis.DataGenerationMethod.all())
@FUZZ
def test_fuzzed_requests_get_no_5xx_and_answers_inside_the_schema(case):
    """Valid and invalid requests (schemathesis' positive and negative data)."""
    response = case.call_asgi(headers=AUTH)
    case.validate_response(response, checks=CHECKS)


@schema.parametrize(endpoint="^/api/")
@FUZZ
def test_no_route_answers_a_fuzzed_request_without_the_token(case):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {S.oam_token}"}):
        response = case.call_asgi(headers=dict(case.headers or {}, **headers) if headers else
                                  {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"})
        assert response.status_code == 401, (headers, response.status_code, response.text[:200])


def test_every_api_route_refuses_bad_json_without_the_token_with_401():
    """Bad JSON, no token: 401, not the body's 400 or 422 (the token is checked first)."""
    from fastapi.testclient import TestClient
    a = app()
    client = TestClient(a)
    routes = [(m, r.path) for r in a.routes if r.path.startswith("/api/")
              for m in getattr(r, "methods", ()) if m in ("POST", "PUT", "DELETE", "GET")]
    assert len(routes) >= 20
    for method, path in routes:
        url = path.replace("{route_id}", "1").replace("{", "").replace("}", "")
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            r = client.request(method, url, content=b'{"not json', headers=dict(
                headers, **{"Content-Type": "application/json"}))
            assert r.status_code == 401, (method, url, headers, r.status_code, r.text[:120])
