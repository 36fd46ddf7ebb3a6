"""C17 distributed rate limits and C18 admission control, through a real channel."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from graphgate.server.audit import AuditLog
from graphgate.server.embedded import EmbeddedStores
from graphgate.server.lifecycle import Stores
from graphgate.server.services.admission import Pressure
from graphgate.server.settings import Settings
from graphgate.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
    operator_pb2,
    operator_pb2_grpc,
)
from tests.conftest import TEST_OPERATOR_KEY, FakeClock, custom_server
from tests.support import bearer, code_of, register

pytestmark = pytest.mark.security
LIMITS = "auth_other=5/60,register=1000000/3600"


def _window_aligned_clock() -> FakeClock:
    # A fresh, window-aligned start so each test has empty buckets.
    return FakeClock(start=float(60 * (40_000_000 + uuid.uuid4().int % 1_000_000)))


async def _me(
    stub: auth_pb2_grpc.AuthServiceStub, metadata: list[tuple[str, str]]
) -> dict[str, str]:
    call = stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=metadata)
    await call
    return {k: str(v) for k, v in await call.initial_metadata()}


async def _count_passing(
    stub: auth_pb2_grpc.AuthServiceStub, metadata: list[tuple[str, str]], attempts: int
) -> tuple[int, grpc.RpcError | None]:
    passed, refusal = 0, None
    for _ in range(attempts):
        try:
            await _me(stub, metadata)
            passed += 1
        except grpc.RpcError as error:
            refusal = error
    assert refusal is None or code_of(refusal) == grpc.StatusCode.RESOURCE_EXHAUSTED
    return passed, refusal


@pytest.fixture
async def limited(
    settings: Settings, stores: Stores, audit_log: AuditLog
) -> AsyncIterator[tuple[aio.Channel, FakeClock, object]]:
    clock = _window_aligned_clock()
    async with (
        custom_server(settings, stores, audit_log, clock=clock, rate_limits=LIMITS) as (
            server,
            services,
        ),
        aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        yield channel, clock, services


async def test_c17_exactly_n_pass_then_refused_with_headers(
    limited: tuple[aio.Channel, FakeClock, object],
) -> None:
    """C17: N calls pass with decreasing x-ratelimit-remaining; call N+1 is
    RESOURCE_EXHAUSTED with retry-after, RetryInfo and QuotaFailure."""
    channel, _, _ = limited
    account = await register(channel)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    remaining = []
    for _ in range(5):
        headers = await _me(stub, bearer(account.token))
        assert headers["x-ratelimit-limit"] == "5"
        assert 0 < int(headers["x-ratelimit-reset"]) <= 60
        remaining.append(int(headers["x-ratelimit-remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    with pytest.raises(grpc.RpcError) as caught:
        await _me(stub, bearer(account.token))
    error = caught.value
    assert code_of(error) == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailing = dict(error.trailing_metadata() or ())
    assert trailing["x-ratelimit-limit"] == "5"
    assert trailing["x-ratelimit-remaining"] == "0"
    # The previous window keeps weighing in after the edge: up to 2 windows.
    assert 1 <= int(trailing["retry-after"]) <= 120
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    kinds = {d.TypeName().split(".")[-1] for d in status.details}
    assert {"ErrorInfo", "RetryInfo", "QuotaFailure"} <= kinds
    for detail in status.details:
        if detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            quota = error_details_pb2.QuotaFailure()
            detail.Unpack(quota)
            assert quota.violations[0].subject == "auth_other"


async def test_c17_the_window_slides_without_a_reset_burst(
    limited: tuple[aio.Channel, FakeClock, object],
) -> None:
    """C17: at the window edge nothing resets: the previous window still weighs
    in, so no burst of 2N; half a window later about half the limit is back."""
    channel, clock, _ = limited
    account = await register(channel)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    assert (await _count_passing(stub, bearer(account.token), 6))[0] == 5
    clock.advance(60)  # the next fixed window begins
    assert (await _count_passing(stub, bearer(account.token), 5))[0] == 0
    clock.advance(30)  # half way: the previous 5 weigh 2.5
    assert (await _count_passing(stub, bearer(account.token), 5))[0] == 2


async def test_c17_tiers_multiply_the_limit(limited: tuple[aio.Channel, FakeClock, object]) -> None:
    """C17: pro gets 2.5x and enterprise 5x the base limit."""
    channel, _, _ = limited
    operator = operator_pb2_grpc.OperatorServiceStub(channel)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    for tier, expected in (("pro", 12), ("enterprise", 25)):
        account = await register(channel)
        await operator.SetUserTier(
            operator_pb2.SetUserTierRequest(email=account.email, tier=tier),
            metadata=[("x-api-key", TEST_OPERATOR_KEY)],
        )
        passed, _ = await _count_passing(stub, bearer(account.token), expected + 2)
        assert passed == expected, tier


async def test_c17_api_key_has_its_own_bucket_and_unverified_keys_none(
    limited: tuple[aio.Channel, FakeClock, object],
) -> None:
    """C17: identity is the verified key (not its user); an unverified key is
    refused before it is counted, so it cannot drain anyone's bucket."""
    channel, _, _ = limited
    account = await register(channel)
    created = await keys_pb2_grpc.ApiKeyServiceStub(channel).CreateApiKey(
        keys_pb2.CreateApiKeyRequest(name="bucket"), metadata=bearer(account.token)
    )
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    fake = created.api_key[:19] + "0" * 48
    for _ in range(10):
        with pytest.raises(grpc.RpcError) as caught:
            await _me(stub, [("x-api-key", fake)])
        assert code_of(caught.value) == grpc.StatusCode.UNAUTHENTICATED
    assert (await _count_passing(stub, [("x-api-key", created.api_key)], 6))[0] == 5
    assert (await _count_passing(stub, bearer(account.token), 6))[0] == 5


async def test_c17_two_servers_share_one_global_limit(
    settings: Settings, stores: Stores, audit_log: AuditLog
) -> None:
    """C17: replicas sharing Valkey enforce one limit between them."""
    clock = _window_aligned_clock()
    async with (
        custom_server(settings, stores, audit_log, clock=clock, rate_limits=LIMITS) as (a, _),
        custom_server(settings, stores, audit_log, clock=clock, rate_limits=LIMITS) as (b, _),
        aio.insecure_channel(f"127.0.0.1:{a.port}") as first,
        aio.insecure_channel(f"127.0.0.1:{b.port}") as second,
    ):
        account = await register(first)
        stubs = [auth_pb2_grpc.AuthServiceStub(first), auth_pb2_grpc.AuthServiceStub(second)]
        passed = 0
        for i in range(10):
            ok, _ = await _count_passing(stubs[i % 2], bearer(account.token), 1)
            passed += ok
    assert passed == 5


@pytest.mark.slow
async def test_c17_valkey_down_falls_back_to_local_limits_and_recovers(
    settings: Settings, stores: Stores, audit_log: AuditLog, embedded: EmbeddedStores
) -> None:
    """C17: with Valkey stopped, calls are still limited (per process); the
    breaker opens once, and closes again when Valkey returns."""
    clock = _window_aligned_clock()
    async with (
        custom_server(settings, stores, audit_log, clock=clock, rate_limits=LIMITS) as (
            server,
            services,
        ),
        aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        account = await register(channel)
        created = await keys_pb2_grpc.ApiKeyServiceStub(channel).CreateApiKey(
            keys_pb2.CreateApiKeyRequest(name="fallback"), metadata=bearer(account.token)
        )
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        key = [("x-api-key", created.api_key)]
        embedded.stop_valkey()
        try:
            passed, refusal = await _count_passing(stub, key, 8)
            assert passed == 5
            assert refusal is not None
            assert services.breaker.state.value == "open"
        finally:
            embedded.start_valkey()
        clock.advance(120)
        for _ in range(50):
            await asyncio.sleep(0.1)
            try:
                await _me(stub, key)
            except grpc.RpcError:
                continue
            if services.breaker.state.value == "closed":
                break
        assert services.breaker.state.value == "closed"
    degraded = [e for e in audit_log.recent(200) if e["event_type"] == "service_degraded"]
    outcomes = [e["outcome"] for e in degraded if e["reason"].startswith("Valkey")]
    assert outcomes[:2] == ["closed", "open"]  # newest first: opened once, closed once


class Dial:
    """A pressure source the test turns by hand."""

    def __init__(self) -> None:
        self.cpu = 0.0

    def sample(self) -> Pressure:
        return Pressure(memory_bytes=100 * 2**20, cpu_percent=self.cpu)


async def test_c18_shedding_follows_pressure_with_hysteresis(
    settings: Settings, stores: Stores, audit_log: AuditLog
) -> None:
    """C18: shedding starts at the start threshold and stops only below the stop
    threshold; refused calls are UNAVAILABLE with a retry hint; health stays
    SERVING and token refresh is never shed."""
    dial = Dial()
    async with (
        custom_server(settings, stores, audit_log, pressure=dial) as (
            server,
            services,
        ),
        aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        account = await register(channel)
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        operator = operator_pb2_grpc.OperatorServiceStub(channel)
        await operator.SetAdmissionThresholds(
            operator_pb2.SetAdmissionThresholdsRequest(
                thresholds=operator_pb2.AdmissionThresholds(
                    memory_start_bytes=8 * 2**30,
                    memory_stop_bytes=7 * 2**30,
                    cpu_start_percent=90,
                    cpu_stop_percent=50,
                    inflight_start=500,
                    inflight_stop=400,
                    per_graph_inflight=64,
                )
            ),
            metadata=[("x-api-key", TEST_OPERATOR_KEY)],
        )

        async def outcome() -> str:
            services.admission.sample_now()
            refusal: grpc.RpcError | None = None
            try:
                await _me(stub, bearer(account.token))
            except grpc.RpcError as error:
                refusal = error
            if refusal is None:
                return "ok"
            assert code_of(refusal) == grpc.StatusCode.UNAVAILABLE
            assert int(dict(refusal.trailing_metadata() or ())["retry-after"]) >= 1
            return "shed"

        steps = []
        for cpu in (10, 95, 70, 95, 40, 70):
            dial.cpu = cpu
            steps.append(await outcome())
            reply = await health.Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            if steps[-1] == "shed":
                refreshed = await stub.Refresh(
                    auth_pb2.RefreshRequest(), metadata=bearer(account.token)
                )
                account.token = refreshed.session.access_token
        assert steps == ["ok", "shed", "shed", "shed", "ok", "ok"]
        state = await operator.GetAdmission(
            operator_pb2.GetAdmissionRequest(), metadata=[("x-api-key", TEST_OPERATOR_KEY)]
        )
    assert state.shed_total == 3
    assert not state.shedding


async def test_c18_inconsistent_thresholds_are_refused(channel: aio.Channel) -> None:
    """C18: a stop level above its start level is refused, nothing changes."""
    operator = operator_pb2_grpc.OperatorServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        await operator.SetAdmissionThresholds(
            operator_pb2.SetAdmissionThresholdsRequest(
                thresholds=operator_pb2.AdmissionThresholds(
                    memory_start_bytes=1,
                    memory_stop_bytes=2,
                    cpu_start_percent=90,
                    cpu_stop_percent=50,
                    inflight_start=5,
                    inflight_stop=4,
                    per_graph_inflight=1,
                )
            ),
            metadata=[("x-api-key", TEST_OPERATOR_KEY)],
        )
    assert code_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT
