"""OCI's model catalogue: ListModels on the Generative AI management API
(``generativeai.<region>.oci.<domain>/20231130/models``; ``api_base``, where given, stands for
both that host and the inference host), signed as every other call. Each base model with its
vendor, version, capabilities, lifecycle state and the three retirement dates."""

from __future__ import annotations

import json
from typing import Any, ClassVar
from urllib.parse import urlencode

from ._core import PreparedCall, split_params, transport_options
from ._endpoint import API_VERSION, realm_domain, split_api_base
from ._errors import APIResponseValidationError
from ._settings import SettingsCache
from ._types import OpenAIObject

PAGE = 1000  # OCI's largest page: one call for any region's catalogue, more followed by opc-next-page
MAX_PAGES = 50


class CatalogModel(OpenAIObject):
    """A base model in OCI's catalogue; ``id`` is its name (what ``model=`` takes), ``ocid`` its OCID."""

    _fields: ClassVar[frozenset[str]] = frozenset({"id", "ocid", "vendor", "version", "capabilities", "lifecycle_state", "type",
                                                   "time_deprecated", "time_on_demand_retired", "time_dedicated_retired"})  # fmt: skip


def management_url(path: str, *, region: str, api_base: str | None) -> str:
    base = split_api_base(api_base)[0] if api_base else f"https://generativeai.{region}.oci.{realm_domain(region)}"
    return f"{base}/{API_VERSION}/{path}"


def prepare_list_models(cache: SettingsCache, params: dict[str, Any], page: str | None) -> PreparedCall:
    oci, rest = split_params(params)
    timeout, retries, extra = transport_options(rest)
    settings = cache.resolve(oci)
    query = {"compartmentId": settings.require_compartment(), "limit": str(PAGE), **({"page": page} if page else {})}
    headers = {"accept": "application/json", "content-type": "application/json", **extra}  # the oci SDK sends both, on a GET too
    return PreparedCall(url=f"{management_url('models', region=settings.region, api_base=settings.api_base)}?{urlencode(query)}", body=b"",
                        headers=headers, signer=settings.signer, stream=False, timeout=timeout, max_retries=retries,
                        parse=lambda data, rid: OpenAIObject(data), context="list models", method="GET", raw=True)  # fmt: skip


def catalog_page(reply: Any) -> tuple[list[CatalogModel], str | None]:
    """The models of one ListModels reply (a RawReply), and the next page's token."""
    try:
        items = json.loads(reply.body)["items"]
        models = [CatalogModel({
            "id": item["displayName"], "ocid": item["id"], "vendor": item.get("vendor"), "version": item.get("version"),
            "capabilities": list(item.get("capabilities") or []), "lifecycle_state": item.get("lifecycleState"), "type": item.get("type"),
            "time_deprecated": item.get("timeDeprecated"), "time_on_demand_retired": item.get("timeOnDemandRetired"),
            "time_dedicated_retired": item.get("timeDedicatedRetired"),
        }) for item in items]  # fmt: skip
    except (ValueError, KeyError, TypeError) as exc:
        raise APIResponseValidationError(f"list models: OCI's reply is not a ModelCollection ({type(exc).__name__})", status_code=200,
                                         opc_request_id=reply.opc_request_id) from None  # fmt: skip
    return models, reply.next_page
