"""What OCI's catalogue (ListModels) says of each deployment's model: read at start-up (bounded,
before the first request) and refreshed in the background, never on a request's path. It feeds
``GET /v1/models`` (an ``oci`` object per model) and ``model_info.on_retirement``: ``warn`` (the
default: served, OCI's notice passed on), ``block_after`` (past the retirement date for the
deployment's serving mode: 410 ``model_retired`` without calling OCI) or ``alias`` (answered by
``model_info.replacement``)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from typing import Any

from .._settings import CONNECTION_SETTINGS
from ._errors import GatewayError

log = logging.getLogger("ocilm.gateway")
REFRESH_SECONDS = 3600.0
RETRY_SECONDS = 60.0  # after a read that did not complete
FIRST_READ_SECONDS = 3.0
POLICIES = ("warn", "block_after", "alias")


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class ModelCatalog:
    """The catalogue entry of each deployment's model, by deployment id."""

    def __init__(self, config: Any, client: Any) -> None:
        self.config, self.client = config, client
        self.entries: dict[str, Any] = {}  # deployment id -> CatalogModel
        self.retire_at: dict[str, tuple[float, str]] = {}  # deployment id -> (when, ISO) it retires in its serving mode
        self.read_at: float | None = None

    def _readable(self) -> dict[tuple, tuple[dict[str, Any], list[Any]]]:
        """Deployments grouped by the credentials that read their catalogue (IAM-signed, native)."""
        groups: dict[tuple, tuple[dict[str, Any], list[Any]]] = {}
        for deployments in self.config.deployments.values():
            for d in deployments:
                if d.api_mode != "native" or not d.model.startswith("oci/") or d.model.startswith("oci/ocid1."):
                    continue
                connection = {k: d.params[k] for k in CONNECTION_SETTINGS if k in d.params}
                key = tuple(sorted((k, repr(v)) for k, v in connection.items()))
                groups.setdefault(key, (connection, []))[1].append(d)
        return groups

    async def refresh(self) -> None:
        complete = True
        for connection, deployments in self._readable().values():
            try:
                listed = {m.id: m for m in await self.client.list_models(**connection, max_retries=1)}
            except Exception as exc:  # a catalogue that cannot be read changes nothing: requests go on as configured
                log.info("reading OCI's model catalogue failed (%s); trying again in %.0f s", type(exc).__name__, RETRY_SECONDS)
                complete = False
                continue
            for d in deployments:
                found = listed.get(d.model[len("oci/"):])
                if found is not None:
                    self.entries[d.id] = found
                    dedicated = str(d.params.get("oci_serving_mode", "ON_DEMAND")).upper() == "DEDICATED"
                    when = found.time_dedicated_retired if dedicated else found.time_on_demand_retired
                    at = _epoch(when)
                    if at is not None:  # parsed once here, not on every request
                        self.retire_at[d.id] = (at, when)
        self.read_at = time.time() if complete else None

    async def first_read(self) -> None:
        try:
            await asyncio.wait_for(self.refresh(), FIRST_READ_SECONDS)
        except asyncio.TimeoutError:
            log.info("OCI's model catalogue was not read within %.0f s at start; it is read in the background", FIRST_READ_SECONDS)

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS if self.read_at is not None else RETRY_SECONDS)
            await self.refresh()

    def card(self, deployments: list[Any]) -> dict[str, Any] | None:
        """The ``oci`` object of ``GET /v1/models`` for a model group (its first known deployment)."""
        for d in deployments:
            entry = self.entries.get(d.id)
            if entry is not None:
                return {"model": entry.id, "lifecycle_state": entry.lifecycle_state, "time_deprecated": entry.time_deprecated,
                        "time_on_demand_retired": entry.time_on_demand_retired, "time_dedicated_retired": entry.time_dedicated_retired}  # fmt: skip
        return None

    def route(self, name: Any) -> Any:
        """The model group to answer ``name`` with: itself, or (every deployment retired) its
        ``alias`` replacement; a ``block_after`` group is refused with 410. On every request: a
        group with a deployment that has no retirement date costs a dict lookup or two."""
        if not self.retire_at or not isinstance(name, str):
            return name
        group = self.config.deployments.get(self.config.resolve(name))
        if not group or any(d.id not in self.retire_at for d in group):
            return name
        now = time.time()
        if any(self.retire_at[d.id][0] > now for d in group):
            return name
        first, when = group[0], self.retire_at[group[0].id][1]
        policy, replacement = first.on_retirement, first.replacement
        if policy == "alias" and replacement:
            return replacement
        if policy == "block_after":
            instead = f"; use {replacement}" if replacement else ""
            raise GatewayError(410, f"model {name!r} ({first.model[4:]}) was retired by OCI on {when}{instead} (model_info.on_retirement: "
                               "block_after)", param="model", code="model_retired")  # fmt: skip
        return name
