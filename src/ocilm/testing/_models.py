"""OCI's ListModels and GetModel (the Generative AI management API, ``/20231130/models``) for
the simulator's base models, in the shape of the ``oci`` SDK's ``ModelCollection``,
``ModelSummary`` and ``Model``: their capabilities, lifecycle and the three retirement dates."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qs

from ._catalog import LIFECYCLE, MODELS, ServedModel

CAPABILITIES = {"chat": ["CHAT"], "embed": ["TEXT_EMBEDDINGS"], "rerank": ["TEXT_RERANK"]}
STATES = ("ACTIVE", "CREATING", "DELETING", "DELETED", "FAILED")
MAX_LIMIT = 1000


class ModelsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def model_ocid(model_id: str) -> str:
    return "ocid1.generativeaimodel.oc1.us-chicago-1.amaaaaaa" + hashlib.sha256(model_id.encode()).hexdigest()[:40]


def summary(model: ServedModel, compartment_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": model_ocid(model.id), "compartmentId": compartment_id, "capabilities": CAPABILITIES[model.kind], "lifecycleState": "ACTIVE",
        "displayName": model.id, "vendor": model.vendor, "version": "1.0", "timeCreated": "2025-01-01T00:00:00.000Z", "type": "BASE",
        "isLongTermSupported": False, "freeformTags": {}, "definedTags": {}, "systemTags": {},
    }  # fmt: skip
    life = LIFECYCLE.get(model.id)
    if life is not None:
        found.update(timeDeprecated=life.time_deprecated, timeOnDemandRetired=life.time_on_demand_retired,
                     timeDedicatedRetired=life.time_dedicated_retired)  # fmt: skip
    return found


def list_models(query: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(ModelCollection, headers): filtered, sorted by name, paged with ``opc-next-page``."""
    params = parse_qs(query, keep_blank_values=True)
    one = {k: v[-1] for k, v in params.items()}
    compartment = one.get("compartmentId")
    if not compartment:
        raise ModelsError(400, "MissingParameter", "compartmentId: a required query parameter")
    state = one.get("lifecycleState")
    if state is not None and state not in STATES:
        raise ModelsError(400, "InvalidParameter", f"lifecycleState: must be one of {', '.join(STATES)}")
    try:
        limit = int(one.get("limit", "100"))
        start = int(one.get("page", "0"))
    except ValueError:
        raise ModelsError(400, "InvalidParameter", "limit and page: expected whole numbers") from None
    if not 1 <= limit <= MAX_LIMIT or start < 0:
        raise ModelsError(400, "InvalidParameter", f"limit: from 1 to {MAX_LIMIT}")
    found = [summary(m, compartment) for m in MODELS.values()]
    capabilities = set(params.get("capability", []))
    found = [m for m in found if (not capabilities or capabilities & set(m["capabilities"]))
             and (state is None or m["lifecycleState"] == state) and one.get("vendor") in (None, m["vendor"])
             and one.get("displayName") in (None, m["displayName"]) and one.get("id") in (None, m["id"])]  # fmt: skip
    found.sort(key=lambda m: m["displayName"], reverse=one.get("sortOrder") == "DESC")
    page = found[start : start + limit]
    headers = {"opc-next-page": str(start + limit)} if start + limit < len(found) else {}
    return {"items": page}, headers


def get_model(model_ocid_or_name: str, compartment_id: str) -> dict[str, Any]:
    for model in MODELS.values():
        if model_ocid_or_name in (model.id, model_ocid(model.id)):
            return {**summary(model, compartment_id), "description": f"{model.vendor} base model {model.id}",
                    "timeUpdated": "2025-01-01T00:00:00.000Z"}  # fmt: skip
    raise ModelsError(404, "NotAuthorizedOrNotFound", f"Authorization failed or requested resource not found: model {model_ocid_or_name!r}")
