"""JSON over HTTP (httpx): an error answer becomes an `RtmError` with the protocol's code."""

from __future__ import annotations

from typing import Any

import httpx

from rtm.client.errors import RtmError


async def request_json(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    body: object = None,
    token: str | None = None,
    params: dict[str, str] | None = None,
) -> Any:
    """One request; its JSON answer (None for 204).

    Raises:
        RtmError: `network` when no answer came; else the `{"error":{...}}` of the answer
            (`http_<status>` when it has none), with `status` and `retry_after_ms`.
    """
    headers = {"accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        response = await http.request(method, url, json=body, headers=headers, params=params)
    except httpx.HTTPError as exc:
        raise RtmError("network", f"{method} {url}: {exc!r}") from exc
    if response.status_code == 204:
        return None
    try:
        parsed = response.json() if response.content else None
    except ValueError:
        parsed = None
    if response.is_success:
        return parsed
    error = parsed.get("error") if isinstance(parsed, dict) else None
    error = error if isinstance(error, dict) else {}
    retry = error.get("retry_after_ms")
    if not isinstance(retry, int):
        header = response.headers.get("retry-after", "")
        retry = int(float(header) * 1000) if header.replace(".", "", 1).isdigit() else None
    raise RtmError(
        str(error.get("code", f"http_{response.status_code}")),
        str(error.get("message", response.reason_phrase)),
        status=response.status_code,
        field=error.get("field"),
        retry_after_ms=retry,
    )
