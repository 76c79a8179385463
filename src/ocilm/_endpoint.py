"""Where a request goes: regions, realms and ``api_base``.

The host is built only from a validated region, so no setting can point the signer's
credentials at a host the caller did not choose (``api_base`` is the explicit way to do that).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ._errors import ConfigurationError

API_VERSION = "20231130"
DEFAULT_REGION = "us-ashburn-1"

_REALM_DOMAINS = {
    "oc1": "oraclecloud.com", "oc2": "oraclegovcloud.com", "oc3": "oraclegovcloud.com",
    "oc4": "oraclegovcloud.uk", "oc8": "oraclecloud8.com", "oc9": "oraclecloud9.com",
    "oc10": "oraclecloud10.com", "oc14": "oraclecloud14.com", "oc15": "oraclecloud15.com",
    "oc19": "oraclecloud.eu", "oc20": "oraclecloud20.com", "oc21": "oraclecloud21.com",
    "oc23": "oraclecloud23.com", "oc24": "oraclecloud24.com", "oc26": "oraclecloud26.com",
    "oc29": "oraclecloud29.com", "oc35": "oraclecloud35.com", "oc42": "oraclecloud42.com",
    "oc51": "oraclecloud51.com", "oc52": "oraclecloud52.com",
}  # fmt: skip

# Regions outside the commercial realm (oc1); any other well-formed region id is oc1,
# which is also what OCI's own SDK assumes for a region it does not know.
_NON_COMMERCIAL_REGIONS = {
    "oc2": "us-langley-1 us-luke-1",
    "oc3": "us-gov-ashburn-1 us-gov-chicago-1 us-gov-phoenix-1",
    "oc4": "uk-gov-cardiff-1 uk-gov-london-1",
    "oc8": "ap-chiyoda-1 ap-ibaraki-1",
    "oc9": "me-dcc-muscat-1 me-ibri-1",
    "oc10": "ap-dcc-canberra-1",
    "oc14": "eu-dcc-dublin-1 eu-dcc-dublin-2 eu-dcc-milan-1 eu-dcc-milan-2 eu-dcc-rating-1 eu-dcc-rating-2",
    "oc15": "ap-dcc-gazipur-1",
    "oc19": "eu-frankfurt-2 eu-madrid-2",
    "oc20": "eu-jovanovac-1",
    "oc21": "me-alrayyan-1 me-dcc-doha-1",
    "oc23": "us-somerset-1 us-thames-1",
    "oc24": "eu-crissier-1 eu-dcc-zurich-1",
    "oc26": "me-abudhabi-3 me-alain-1",
    "oc29": "me-abudhabi-2 me-abudhabi-4",
    "oc35": "ap-chuncheon-2 ap-seoul-2 ap-suwon-1",
    "oc42": "us-ashburn-2 us-newark-1",
    "oc51": "eu-budapest-1",
    "oc52": "sa-riodejaneiro-1",
}
_REALM_OF_REGION = {
    region: realm for realm, names in _NON_COMMERCIAL_REGIONS.items() for region in names.split()
}

_SHORT_CODES = dict(
    pair.split("=")
    for pair in ["aga=us-saltlake-2", "ahu=me-abudhabi-3", "ams=eu-amsterdam-1", "arn=eu-stockholm-1", "auh=me-abudhabi-1", "avf=eu-crissier-1", "avz=eu-dcc-zurich-1", "beg=eu-jovanovac-1", "bgy=eu-dcc-milan-1", "bno=ap-chuncheon-2", "bog=sa-bogota-1", "bom=ap-mumbai-1", "brs=uk-gov-cardiff-1", "cdg=eu-paris-1", "cwl=uk-cardiff-1", "dac=ap-dcc-gazipur-1", "dln=ap-suwon-1", "doh=me-dcc-doha-1", "dtm=eu-dcc-rating-2", "dtz=ap-seoul-2", "dus=eu-dcc-rating-1", "dxb=me-dubai-1", "ebb=us-somerset-1", "ebl=us-thames-1", "fra=eu-frankfurt-1", "gru=sa-saopaulo-1", "hnw=sa-riodejaneiro-1", "hsg=ap-batam-1", "hyd=ap-hyderabad-1", "iad=us-ashburn-1", "ibr=me-ibri-1", "icn=ap-seoul-1", "jbp=ap-kulai-2", "jed=me-jeddah-1", "jnb=af-johannesburg-1", "jsk=eu-budapest-1", "kix=ap-osaka-1", "lej=af-casablanca-1", "lfi=us-langley-1", "lhr=uk-london-1", "lin=eu-milan-1", "ltn=uk-gov-london-1", "luf=us-luke-1", "mad=eu-madrid-1", "mct=me-dcc-muscat-1", "mel=ap-melbourne-1", "mrs=eu-marseille-1", "mty=mx-monterrey-1", "mtz=il-jerusalem-1", "mxp=eu-dcc-milan-2", "nja=ap-chiyoda-1", "nrq=eu-turin-1", "nrt=ap-tokyo-1", "onm=ap-delhi-1", "ord=us-chicago-1", "orf=eu-madrid-3", "ork=eu-dcc-dublin-1", "pgc=us-newark-1", "phx=us-phoenix-1", "pia=us-gov-chicago-1", "qro=mx-queretaro-1", "rba=me-alain-1", "ric=us-gov-ashburn-1", "rkt=me-abudhabi-2", "ruh=me-riyadh-1", "scl=sa-santiago-1", "shj=me-abudhabi-4", "sin=ap-singapore-1", "sjc=us-sanjose-1", "snn=eu-dcc-dublin-2", "str=eu-frankfurt-2", "syd=ap-sydney-1", "tus=us-gov-phoenix-1", "ukb=ap-ibaraki-1", "vap=sa-valparaiso-1", "vcp=sa-vinhedo-1", "vll=eu-madrid-2", "vve=me-alrayyan-1", "wga=ap-dcc-canberra-1", "xsp=ap-singapore-2", "yny=ap-chuncheon-1", "yul=ca-montreal-1", "yxj=us-ashburn-2", "yyz=ca-toronto-1", "zrh=eu-zurich-1"]
)

_REGION_ID = re.compile(r"^[a-z]{2,3}(-[a-z]+)+-[0-9]{1,2}$")

ACTIONS = ("chat", "embedText", "rerankText", "applyGuardrails")


def normalize_region(region: str) -> str:
    """Validate a region id or short code (``us-chicago-1`` or ``ord``) and return the id."""
    if not isinstance(region, str) or not region.strip():
        raise ConfigurationError(
            "oci_region must be a region id such as 'us-chicago-1' (or a short code such as 'ord')",
            param="oci_region",
        )
    value = region.strip().lower()
    if value in _SHORT_CODES:
        return _SHORT_CODES[value]
    if not _REGION_ID.match(value):
        raise ConfigurationError(
            "oci_region is not a valid OCI region: expected an id such as "
            "'us-chicago-1', 'eu-frankfurt-1' or a three-letter short code such as 'ord'",
            param="oci_region",
        )
    return value


def realm_domain(region: str) -> str:
    return _REALM_DOMAINS[_REALM_OF_REGION.get(region, "oc1")]


def regional_base_url(region: str) -> str:
    region = normalize_region(region)
    return f"https://inference.generativeai.{region}.oci.{realm_domain(region)}"


def split_api_base(api_base: str) -> tuple[str, str | None]:
    """Split ``api_base`` into (base URL without trailing slash, action name or None).

    Accepts ``scheme://host[:port][/prefix]`` or a full action URL
    ``.../20231130/actions/<action>``; the action, when given, is only the caller's
    hint and every operation still goes to its own action path under the same base.
    """
    if not isinstance(api_base, str) or not api_base.strip():
        raise ConfigurationError("api_base must be a URL such as 'http://127.0.0.1:8080'", param="api_base")
    url = api_base.strip()
    # Errors name the setting, never its value: a mistyped URL may still hold a password.
    if "@" in url.split("/")[2 if "://" in url else 0]:
        # A URL is shown in errors and logs; credentials in it would travel with them.
        raise ConfigurationError(
            "api_base must not carry credentials (user:password@); send a proxy's credentials in extra_headers",
            param="api_base",
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            "api_base must be an http:// or https:// URL with a host, such as "
            "'https://inference.generativeai.us-chicago-1.oci.oraclecloud.com'",
            param="api_base",
        )
    if parts.query or parts.fragment:
        raise ConfigurationError("api_base must not carry a query or fragment", param="api_base")
    path = parts.path.rstrip("/")
    action = None
    marker = f"/{API_VERSION}/actions/"
    if marker in path:
        path, _, action = path.partition(marker)
        if action not in ACTIONS:
            raise ConfigurationError(
                f"api_base names an unknown action; expected one of {', '.join(ACTIONS)}",
                param="api_base",
            )
    elif path.endswith(f"/{API_VERSION}"):
        path = path[: -len(API_VERSION) - 1]
    return f"{parts.scheme}://{parts.netloc}{path}", action


def action_url(action: str, *, region: str, api_base: str | None) -> str:
    base = split_api_base(api_base)[0] if api_base else regional_base_url(region)
    return f"{base}/{API_VERSION}/actions/{action}"


OPENAI_PATH = "/openai/v1"


def openai_url(path: str, *, region: str, api_base: str | None) -> str:
    """A URL of OCI's OpenAI-compatible API: ``api_base`` (or the region's inference host) is
    the host's root in both APIs, and ocilm appends the path."""
    base = split_api_base(api_base)[0] if api_base else regional_base_url(region)
    return f"{base}{OPENAI_PATH}/{path}"
