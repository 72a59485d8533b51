"""Date-time query filters: RFC 3339 with an offset, inside the representable range, or a 422."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from tests.factories import open_account, signed_in_user

OUT_OF_RANGE = ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"]
WITHOUT_OFFSET = ["2020-01-01T00:00:00", "2020-01-01 00:00:00"]


@pytest.mark.parametrize("moment", OUT_OF_RANGE + WITHOUT_OFFSET)
@pytest.mark.parametrize("name", ["created_after", "created_before"])
async def test_payment_filters_refuse_unrepresentable_and_offsetless_times(
    client: AsyncClient, name: str, moment: str
) -> None:
    user = await signed_in_user(client)
    response = await client.get("/api/v1/payments", params={name: moment}, headers=user.headers)
    assert response.status_code == 422, response.text
    assert response.json()["fields"][0]["field"] == f"query.{name}"


@pytest.mark.parametrize("moment", OUT_OF_RANGE + WITHOUT_OFFSET)
async def test_summary_refuses_unrepresentable_and_offsetless_times(
    client: AsyncClient, moment: str
) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    for params in ({"from": moment}, {"to": moment}):
        response = await client.get(
            f"/api/v1/accounts/{account['id']}/summary", params=params, headers=user.headers
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "validation_error"


async def test_summary_with_one_naive_and_one_aware_bound_is_a_422(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    response = await client.get(
        f"/api/v1/accounts/{account['id']}/summary",
        params={"from": "2020-01-01T00:00:00", "to": "2030-01-01T00:00:00Z"},
        headers=user.headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["fields"][0]["field"] == "query.from"


async def test_extreme_but_representable_times_work(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    response = await client.get(
        f"/api/v1/accounts/{account['id']}/summary",
        params={"from": "0001-01-01T23:59:00+23:58", "to": "9999-12-31T23:59:59Z"},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 0
    response = await client.get(
        "/api/v1/payments",
        params={
            "created_after": "9999-12-31T23:59:59+00:00",
            "created_before": "9999-12-31T23:59:59Z",
        },
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["items"] == []
