"""Injected faults: the failures a real ODS/API shows under load, on demand and reproducible.

Clients are tested against these (retries, Retry-After, cut connections,
expired tokens, broken pages), so the faults themselves must be exact: the
configured share, the same sequence for the same seed, and only on the data
and change-query surface.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import httpx
import orjson
import pytest

from sandbox.app import Faults
from sandbox.server import RunningSandbox, build_sandbox, running_sandbox


def bearer(running: RunningSandbox, prefix: str = "") -> dict[str, str]:
    r = httpx.post(
        f"{running.base_url}{prefix}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(running.client_id, running.client_secret),
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def statuses(running: RunningSandbox, n: int, path: str = "/data/v3/ed-fi/schools") -> list[int]:
    headers = bearer(running)
    with httpx.Client(base_url=running.base_url, headers=headers) as c:
        return [c.get(path).status_code for _ in range(n)]


@pytest.fixture
def running() -> Iterator[RunningSandbox]:
    with running_sandbox(students=0, template=False) as sb:
        yield sb


def test_error_share_is_near_the_configured_one_and_reproducible() -> None:
    with running_sandbox(students=0, template=False, faults="error=0.3,seed=3") as sb:
        first = statuses(sb, 200)
    with running_sandbox(students=0, template=False, faults="error=0.3,seed=3") as sb:
        again = statuses(sb, 200)
    assert first == again
    counts = Counter(first)
    assert set(counts) == {200, 500, 503}
    failed = counts[500] + counts[503]
    assert 0.2 * 200 <= failed <= 0.4 * 200, counts
    assert counts[500] > 0 and counts[503] > 0
    with running_sandbox(students=0, template=False, faults="error=0.3,seed=4") as sb:
        other_seed = statuses(sb, 200)
    assert other_seed != first


def test_in_process_faults_match_the_configured_ones(running: RunningSandbox) -> None:
    running.sandbox.faults = Faults.parse("error=0.3,seed=3")
    in_process = statuses(running, 200)
    with running_sandbox(students=0, template=False, faults="error=0.3,seed=3") as sb:
        assert statuses(sb, 200) == in_process
    running.sandbox.faults = Faults()
    assert statuses(running, 20) == [200] * 20


def test_injected_failures_are_problem_details(running: RunningSandbox) -> None:
    running.sandbox.faults = Faults.parse("error=1")
    r = httpx.get(f"{running.base_url}/data/v3/ed-fi/schools", headers=bearer(running))
    assert r.status_code in (500, 503)
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == "urn:ed-fi:api:internal-server-error"
    assert body["status"] == r.status_code
    assert "--faults error" in body["detail"]


def test_throttle_answers_429_with_retry_after(running: RunningSandbox) -> None:
    running.sandbox.faults = Faults.parse("throttle=1,retry_after=2.5")
    r = httpx.get(f"{running.base_url}/data/v3/ed-fi/students", headers=bearer(running))
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "2.5"
    assert r.json()["type"] == "urn:ed-fi:api:too-many-requests"
    running.sandbox.faults = Faults.parse("throttle=0.5,seed=9")
    counts = Counter(statuses(running, 100, "/data/v3/ed-fi/students"))
    assert set(counts) == {200, 429}
    assert 30 <= counts[429] <= 70


def test_drop_cuts_the_connection_mid_body(running: RunningSandbox) -> None:
    running.sandbox.faults = Faults.parse("drop=1")
    headers = bearer(running)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{running.base_url}/data/v3/ed-fi/schools", headers=headers)
    with (
        httpx.Client(headers=headers) as c,
        c.stream("GET", f"{running.base_url}/data/v3/ed-fi/schools") as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-length"] == "100000"
        with pytest.raises(httpx.RemoteProtocolError):
            r.read()
    running.sandbox.faults = Faults()
    assert httpx.get(f"{running.base_url}/data/v3/ed-fi/schools", headers=headers).json() == []


def test_latency_delays_data_requests(running: RunningSandbox) -> None:
    running.sandbox.faults = Faults.parse("latency_ms=50")
    headers = bearer(running)
    with httpx.Client(base_url=running.base_url, headers=headers) as c:
        c.get("/")  # connect first: the delay measured is the server's
        for path in ("/data/v3/ed-fi/schools", "/changeQueries/v1/availableChangeVersions"):
            started = time.perf_counter()
            assert c.get(path).status_code == 200
            assert time.perf_counter() - started >= 0.05, path


def test_token_ttl() -> None:
    with running_sandbox(students=0, template=False, faults="token_ttl=1") as sb:
        token = httpx.post(
            f"{sb.base_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(sb.client_id, sb.client_secret),
        ).json()
        assert token["expires_in"] == 1
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        assert httpx.get(f"{sb.base_url}/data/v3/ed-fi/schools", headers=headers).status_code == 200
        time.sleep(1.05)
        expired = httpx.get(f"{sb.base_url}/data/v3/ed-fi/schools", headers=headers)
        assert expired.status_code == 401
        assert expired.json()["errors"] == ["Invalid Authorization header."]


def test_malformed_pages_for_named_resources(running: RunningSandbox) -> None:
    headers = bearer(running)
    with httpx.Client(base_url=f"{running.base_url}/data/v3", headers=headers) as c:
        for code in ("Ninth grade", "Tenth grade"):
            assert (
                c.post(
                    "/ed-fi/gradeLevelDescriptors",
                    json={
                        "namespace": "uri://ed-fi.org/GradeLevelDescriptor",
                        "codeValue": code,
                        "shortDescription": code,
                    },
                ).status_code
                == 201
            )
        running.sandbox.faults = Faults.parse("malformed=gradeLevelDescriptors|schools")
        for path in ("/ed-fi/gradeLevelDescriptors", "/ed-fi/schools"):
            r = c.get(path)
            assert r.status_code == 200
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(r.content)
        assert c.get("/ed-fi/students").json() == []
        single = c.get("/ed-fi/gradeLevelDescriptors?limit=1").content
        assert not single.endswith(b"]"), "every page of a named resource is broken"


def test_unknown_fault_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown fault 'explode'") as err:
        Faults.parse("error=0.1,explode=1")
    message = str(err.value)
    for known in (
        "error",
        "throttle",
        "retry_after",
        "drop",
        "latency_ms",
        "token_ttl",
        "malformed",
        "seed",
    ):
        assert known in message
    assert "rng" not in message
    with pytest.raises(ValueError, match="unknown fault"):
        build_sandbox(students=0, faults="explode=1")


def test_faults_spare_oauth_metadata_and_discovery(running: RunningSandbox) -> None:
    running.sandbox.faults = Faults.parse("error=1,latency_ms=0")
    base = running.base_url
    assert httpx.get(f"{base}/").status_code == 200
    assert httpx.get(f"{base}/metadata/").status_code == 200
    assert httpx.get(f"{base}/metadata/data/v3/dependencies").status_code == 200
    assert httpx.get(f"{base}/metadata/data/v3/resources/swagger.json").status_code == 200
    tokens = [bearer(running) for _ in range(20)]
    assert len({t["Authorization"] for t in tokens}) == 20
    with httpx.Client(base_url=base, headers=tokens[0]) as c:
        data = Counter(c.get("/data/v3/ed-fi/schools").status_code for _ in range(10))
        changes = Counter(
            c.get("/changeQueries/v1/availableChangeVersions").status_code for _ in range(10)
        )
    assert set(data) <= {500, 503} and sum(data.values()) == 10
    assert set(changes) <= {500, 503} and sum(changes.values()) == 10
    # an unauthenticated data request is refused before any fault is rolled
    assert httpx.get(f"{base}/data/v3/ed-fi/schools").status_code == 401
