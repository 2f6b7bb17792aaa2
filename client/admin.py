"""The front's admin API over HTTP (`/admin`, behind its admin key): tenant keys and their usage."""
from __future__ import annotations

from typing import Any

import httpx

DEFAULT_API_URL = "http://localhost:9000"


class AdminError(Exception):
    """The front refused or failed: its status and its message (OpenAI's error body)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class AdminClient:
    """`http` is an httpx.Client whose base URL is the front's (http://host:9000); the admin key goes with
    every request as `Authorization: Bearer`."""

    def __init__(self, http: httpx.Client, admin_key: str | None) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {admin_key}"} if admin_key else {}

    @classmethod
    def at(cls, api_url: str, admin_key: str | None, timeout_s: float = 30.0) -> AdminClient:
        return cls(httpx.Client(base_url=api_url, timeout=timeout_s), admin_key)

    def create(self, name: str, **fields: Any) -> dict[str, Any]:
        """The new key's record, with its key string under "key" (shown this once)."""
        return self._call("POST", "/admin/keys", json={"name": name, **fields})

    def list(self) -> list[dict[str, Any]]:
        return self._call("GET", "/admin/keys")["data"]

    def update(self, name: str, **fields: Any) -> dict[str, Any]:
        """Only the fields given change (None clears a limit)."""
        return self._call("PATCH", f"/admin/keys/{name}", json=fields)

    def revoke(self, name: str) -> dict[str, Any]:
        return self._call("DELETE", f"/admin/keys/{name}")

    def usage(self, key: str | None = None, since: str | None = None, until: str | None = None,
              group: str = "hour") -> list[dict[str, Any]]:
        query = {name: value for name, value in (("key", key), ("since", since), ("until", until), ("group", group))
                 if value is not None}
        return self._call("GET", "/admin/usage", params=query)["data"]

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self._http.request(method, path, headers=self._headers, **kwargs)
        if resp.status_code >= 400:
            raise AdminError(resp.status_code, _message(resp))
        return resp.json()


def _message(resp: httpx.Response) -> str:
    try:
        return resp.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return resp.text or resp.reason_phrase
