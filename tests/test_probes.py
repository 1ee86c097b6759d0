"""The pure parts of harness/probes.py: which routes a token-less request reached."""
from harness.probes import _routes, unauthorized_routes


def test_routes_from_the_schema_fill_path_parameters():
    schema = {"paths": {"/api/v1/calls/{call_id}": {"delete": {}, "get": {}},
                        "/healthz": {"get": {}}, "/api/v1/status": {"get": {}, "parameters": []}}}
    assert sorted(_routes(schema)) == [("DELETE", "/api/v1/calls/tbprobe"),
                                       ("GET", "/api/v1/calls/tbprobe"), ("GET", "/api/v1/status"),
                                       ("GET", "/healthz")]


def test_a_route_that_skips_the_token_check_is_named():
    replies = {("GET", "/api/v1/status"): 401, ("DELETE", "/api/v1/calls/tbprobe"): 404,
               ("GET", "/healthz"): 200}
    assert unauthorized_routes(replies) == ["DELETE /api/v1/calls/tbprobe -> 404"]
    assert unauthorized_routes({("GET", "/api/v1/status"): 401}) == []
