"""Resolving OCI settings and credentials from keyword arguments, env vars and config profiles.

Credential precedence (first that applies wins):
1. ``oci_signer``: any OCI SDK signer object.
2. Explicit manual fields (``oci_user``, ``oci_fingerprint``, ``oci_tenancy``, ``oci_key`` or
   ``oci_key_file``), each missing one filled from its ``OCI_*`` env var. The key is one unit:
   an explicit ``oci_key`` or ``oci_key_file`` beats both ``OCI_KEY`` and ``OCI_KEY_FILE``.
3. An explicit config choice: ``oci_config_file`` / ``oci_profile`` / ``oci_security_token_file``.
4. Manual fields from the environment (``OCI_USER``, ``OCI_FINGERPRINT``, ``OCI_TENANCY``,
   ``OCI_KEY`` or ``OCI_KEY_FILE``).
5. The config profile: ``OCI_CONFIG_FILE`` or ``~/.oci/config``, profile ``OCI_CLI_PROFILE``
   or ``DEFAULT``.
Region and compartment: keyword argument, then env var, then (region only) the profile.

Resolved settings are cached, and the cache notices edits: each entry remembers the config
file and key file it was read from (modification time and size) and is resolved again when
either changes, or after OCI answers 401.

Errors name the setting at fault and never its value (a key pasted into the wrong setting
would otherwise be printed).
"""

from __future__ import annotations

import configparser
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._endpoint import DEFAULT_REGION, normalize_region, split_api_base
from ._errors import ConfigurationError
from .auth._keys import load_private_key, load_private_key_file
from .auth._signers import (
    BearerKeySigner,
    KeySigner,
    RequestSigner,
    SDKSignerAdapter,
    SessionTokenSigner,
)

CONNECTION_SETTINGS = frozenset({
    "oci_region", "oci_user", "oci_fingerprint", "oci_tenancy", "oci_key", "oci_key_file",
    "oci_pass_phrase", "oci_security_token_file", "oci_config_file", "oci_profile",
    "oci_compartment_id", "oci_serving_mode", "oci_endpoint_id", "oci_signer", "oci_api_format",
    "api_base", "oci_api_key", "oci_api_mode", "oci_project",
})  # fmt: skip
SECRET_PARAMS = frozenset({"oci_key", "oci_pass_phrase", "oci_signer", "extra_headers", "oci_api_key"})
"""Settings whose values a repr or log must never show (extra_headers may carry a proxy's key)."""

_MANUAL_ENV = {
    "oci_user": "OCI_USER",
    "oci_fingerprint": "OCI_FINGERPRINT",
    "oci_tenancy": "OCI_TENANCY",
    "oci_key": "OCI_KEY",
    "oci_key_file": "OCI_KEY_FILE",
}
_KEY_SOURCES = frozenset({"oci_key", "oci_key_file"})
_ENV_NAMES = (*_MANUAL_ENV.values(), "OCI_REGION", "OCI_COMPARTMENT_ID", "OCI_CONFIG_FILE", "OCI_CLI_PROFILE", "OCI_GENAI_API_KEY",
              "OCI_GENAI_PROJECT")  # fmt: skip
API_MODES = ("native", "openai")


def _env_reader() -> Callable[[], tuple]:
    """The ``OCI_*`` variables' current values, as a cache key. On POSIX CPython this reads the
    raw bytes ``os.environ`` keeps (``_data``, updated by every ``os.environ`` write): 0.7 µs a
    call instead of 10 µs through ``os.environ``'s per-key encoding."""
    raw = getattr(os.environ, "_data", None)
    if os.name == "posix" and isinstance(raw, dict):
        names = tuple(os.fsencode(name) for name in _ENV_NAMES)
        return lambda: tuple(map(raw.get, names))
    return lambda: tuple(map(os.environ.get, _ENV_NAMES))


_env_key = _env_reader()
DEFAULT_CONFIG_FILE = "~/.oci/config"
SERVING_MODES = ("ON_DEMAND", "DEDICATED")
API_FORMATS = ("GENERIC", "COHERE", "COHEREV2")


@dataclass(frozen=True, repr=False)
class Settings:
    """Everything a call needs to reach OCI, resolved once; holds no PEM text."""

    region: str
    signer: RequestSigner
    compartment_id: str | None
    api_base: str | None
    serving_mode: str
    endpoint_id: str | None
    api_format: str | None
    sources: tuple[str, ...] = ()  # files read to resolve these settings (config file, key file)
    api_mode: str = "native"  # "native": /20231130/actions/*; "openai": /openai/v1
    project: str | None = None  # sent as OpenAI-Project on /openai/v1
    api_key: bool = False  # the signer is a Generative AI API key (the key itself lives only in the signer)

    def __repr__(self) -> str:
        return (
            f"Settings(region={self.region!r}, signer={self.signer!r}, compartment_id={self.compartment_id!r}, "
            f"api_base={self.api_base!r}, serving_mode={self.serving_mode!r}, api_mode={self.api_mode!r})"
        )

    def require_compartment(self) -> str:
        if not self.compartment_id:
            raise ConfigurationError(
                "oci_compartment_id is required: pass oci_compartment_id='ocid1.compartment.oc1..…' "
                "or set OCI_COMPARTMENT_ID",
                param="oci_compartment_id",
            )
        return self.compartment_id


# ---------------------------------------------------------------- config profiles

_profile_cache: dict[str, tuple[tuple[int, int] | None, configparser.ConfigParser]] = {}
_profile_lock = threading.Lock()


def file_stamp(path: str) -> tuple[int, int] | None:
    """(modification time, size) of a file, or None if it cannot be read: what changes when
    an operator edits or replaces it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _read_config(path: str) -> configparser.ConfigParser:
    expanded = os.path.expanduser(path)
    stamp = file_stamp(expanded)
    if stamp is None:
        raise ConfigurationError("oci_config_file: no OCI config file at the path given", param="oci_config_file")
    cached = _profile_cache.get(expanded)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(expanded, encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, configparser.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else type(exc).__name__
        raise ConfigurationError(f"oci_config_file could not be read ({reason})", param="oci_config_file") from None
    with _profile_lock:
        _profile_cache[expanded] = (stamp, parser)  # one entry per file: a newer read replaces it
    return parser


def read_profile(path: str, profile: str) -> dict[str, str]:
    """A profile's keys, with ``[DEFAULT]`` keys inherited (configparser semantics)."""
    parser = _read_config(path)
    if profile == "DEFAULT":
        return dict(parser.defaults())
    if not parser.has_section(profile):
        available = ", ".join(["DEFAULT", *parser.sections()])
        raise ConfigurationError(
            f"oci_profile: that profile is not in the OCI config file; profiles there: {available}",
            param="oci_profile",
        )
    return dict(parser.items(profile))


def _signer_from_profile(profile: str, values: Mapping[str, str]) -> RequestSigner:
    where = f"profile [{profile}] of the OCI config file"
    if "key_content" in values:
        raise ConfigurationError(f"{where}: key_content is not allowed in a config file; use key_file", param="oci_config_file")
    key_file = values.get("key_file")
    if not key_file:
        raise ConfigurationError(f"{where} has no key_file", param="oci_config_file")
    key = load_private_key_file(key_file, values.get("pass_phrase"), source=f"key_file of {where}", param="oci_config_file")
    token_file = values.get("security_token_file")
    if token_file:
        return SessionTokenSigner(token_file, key)
    missing = [name for name in ("tenancy", "user", "fingerprint") if not values.get(name)]
    if missing:
        raise ConfigurationError(
            f"{where} is missing {', '.join(missing)} (needed for API-key signing; "
            "or set security_token_file for session-token signing)",
            param="oci_config_file",
        )
    return KeySigner(f"{values['tenancy']}/{values['user']}/{values['fingerprint']}", key)


# ---------------------------------------------------------------- manual credentials


def _manual_signer(fields: Mapping[str, Any], pass_phrase: Any, token_file: str | None, origin: Mapping[str, str]) -> RequestSigner:
    key_text, key_file = fields.get("oci_key"), fields.get("oci_key_file")
    if key_text and key_file and origin.get("oci_key") == origin.get("oci_key_file") == "keyword argument":
        raise ConfigurationError("pass oci_key or oci_key_file, not both", param="oci_key")
    if key_text:
        key = load_private_key(key_text, pass_phrase, source="oci_key")
    elif key_file:
        key = load_private_key_file(key_file, pass_phrase)
    else:
        key = None
    if token_file:
        if key is None:
            raise ConfigurationError(
                "oci_security_token_file needs the session's private key: pass oci_key or oci_key_file",
                param="oci_key_file",
            )
        return SessionTokenSigner(token_file, key)
    missing = [name for name in ("oci_user", "oci_fingerprint", "oci_tenancy") if not fields.get(name)]
    if key is None:
        missing.append("oci_key or oci_key_file")
    if missing:
        looked = "; ".join(
            f"{name}: {origin.get(name, 'not found')}" for name in ("oci_user", "oci_fingerprint", "oci_tenancy", "oci_key", "oci_key_file")
        )
        raise ConfigurationError(
            f"incomplete OCI credentials: missing {', '.join(missing)}. Looked in keyword arguments, then "
            f"environment variables ({', '.join(_MANUAL_ENV.values())}). Found: {looked}. "
            "Alternatively pass oci_signer, or oci_config_file/oci_profile for a ~/.oci/config profile.",
            param=missing[0].split(" ")[0],
        )
    assert key is not None
    return KeySigner(f"{fields['oci_tenancy']}/{fields['oci_user']}/{fields['oci_fingerprint']}", key)


# ---------------------------------------------------------------- the resolver


def profile_location(params: Mapping[str, Any], env: Mapping[str, str]) -> tuple[str, str]:
    """The config file and profile a call reads: argument, then env var, then the default."""
    path = params.get("oci_config_file") or env.get("OCI_CONFIG_FILE") or DEFAULT_CONFIG_FILE
    profile = params.get("oci_profile") or env.get("OCI_CLI_PROFILE") or "DEFAULT"
    return path, profile


def profile_tenancy(params: Mapping[str, Any], env: Mapping[str, str] | None = None) -> str | None:
    """The tenancy OCID of the profile a call would read, or None if there is none."""
    path, profile = profile_location(params, os.environ if env is None else env)
    try:
        return read_profile(path, profile).get("tenancy") or None
    except ConfigurationError:
        return None


def _key_file_source(fields: Mapping[str, Any]) -> list[str]:
    key_file = fields.get("oci_key_file")
    return [os.path.expanduser(key_file)] if key_file and not fields.get("oci_key") else []


def _resolve(params: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    profile_values: dict[str, str] = {}
    sources: list[str] = []
    signer: RequestSigner

    explicit_manual = {k: params[k] for k in _MANUAL_ENV if params.get(k)}
    env_manual = {k: env[v] for k, v in _MANUAL_ENV.items() if env.get(v)}
    explicit_config = any(params.get(k) for k in ("oci_config_file", "oci_profile"))
    token_file = params.get("oci_security_token_file")

    api_key = _api_key(params, env, explicit_iam=bool(params.get("oci_signer") is not None or explicit_manual or explicit_config or token_file))
    if api_key is not None:
        signer = BearerKeySigner(api_key)
    elif params.get("oci_signer") is not None:
        signer = SDKSignerAdapter(params["oci_signer"])
    elif explicit_manual or (token_file and not explicit_config):
        fields = {**env_manual, **explicit_manual}
        if explicit_manual.keys() & _KEY_SOURCES:  # the key is one unit: the explicit one wins whole
            fields = {k: v for k, v in fields.items() if k not in _KEY_SOURCES or k in explicit_manual}
        origin = {k: ("keyword argument" if k in explicit_manual else f"env {_MANUAL_ENV[k]}") for k in fields}
        signer = _manual_signer(fields, params.get("oci_pass_phrase"), token_file, origin)
        sources.extend(_key_file_source(fields))
    elif env_manual and not explicit_config:
        origin = {k: f"env {_MANUAL_ENV[k]}" for k in env_manual}
        signer = _manual_signer(env_manual, params.get("oci_pass_phrase"), None, origin)
        sources.extend(_key_file_source(env_manual))
    else:
        path, profile = profile_location(params, env)
        sources.append(os.path.expanduser(path))
        if not explicit_config and not os.path.exists(os.path.expanduser(path)):
            raise ConfigurationError(
                "no OCI credentials found: pass oci_user, oci_fingerprint, oci_tenancy and oci_key "
                "(or oci_key_file); or set OCI_USER, OCI_FINGERPRINT, OCI_TENANCY and OCI_KEY (or "
                "OCI_KEY_FILE); or pass oci_signer; or create a config profile (default ~/.oci/config) "
                "(oci_config_file / OCI_CONFIG_FILE, oci_profile / OCI_CLI_PROFILE)",
                param="oci_user",
            )
        profile_values = read_profile(path, profile)
        if params.get("oci_pass_phrase"):
            profile_values["pass_phrase"] = params["oci_pass_phrase"]
        if token_file:
            profile_values["security_token_file"] = token_file
        signer = _signer_from_profile(profile, profile_values)
        if profile_values.get("key_file"):
            sources.append(os.path.expanduser(profile_values["key_file"]))

    region = params.get("oci_region")
    if region is None:
        region = env.get("OCI_REGION") or profile_values.get("region") or DEFAULT_REGION
    region = normalize_region(region)

    serving_mode = str(params.get("oci_serving_mode") or "ON_DEMAND").upper()
    if serving_mode not in SERVING_MODES:
        raise ConfigurationError(
            "oci_serving_mode is not valid: use 'ON_DEMAND' or 'DEDICATED'",
            param="oci_serving_mode",
        )
    api_format = params.get("oci_api_format")
    if api_format is not None:
        api_format = str(api_format).upper()
        if api_format not in API_FORMATS:
            raise ConfigurationError(
                f"oci_api_format is not valid: use one of {', '.join(API_FORMATS)}",
                param="oci_api_format",
            )
    api_base = params.get("api_base")
    if api_base is not None:
        split_api_base(api_base)
    api_mode = _api_mode(params.get("oci_api_mode"), api_key is not None)
    project = params.get("oci_project") or env.get("OCI_GENAI_PROJECT") or None
    if project is not None and not isinstance(project, str):
        raise ConfigurationError("oci_project must be a project OCID string (ocid1.generativeaiproject...)", param="oci_project")
    return Settings(
        region=region,
        signer=signer,
        compartment_id=params.get("oci_compartment_id") or env.get("OCI_COMPARTMENT_ID") or None,
        api_base=api_base,
        serving_mode=serving_mode,
        endpoint_id=params.get("oci_endpoint_id") or None,
        api_format=api_format,
        sources=tuple(sources),
        api_mode=api_mode,
        project=project,
        api_key=api_key is not None,
    )


def _api_key(params: Mapping[str, Any], env: Mapping[str, str], explicit_iam: bool) -> str | None:
    """A Generative AI API key: ``oci_api_key``, or ``OCI_GENAI_API_KEY`` unless IAM credentials
    were given explicitly (an explicit credential wins over the environment, as for keys)."""
    given = params.get("oci_api_key")
    if given is not None:
        if not isinstance(given, str) or not given.strip() or any(c.isspace() for c in given.strip()):
            raise ConfigurationError("oci_api_key must be a Generative AI API key (sk-...), one word", param="oci_api_key")
        if explicit_iam:
            raise ConfigurationError("pass oci_api_key or IAM credentials (oci_user/oci_key..., oci_signer, a config profile), not both",
                                     param="oci_api_key")  # fmt: skip
        return given.strip()
    from_env = env.get("OCI_GENAI_API_KEY")
    if from_env and not explicit_iam:
        return from_env.strip()
    return None


def _api_mode(value: Any, has_api_key: bool) -> str:
    """Which API a call uses: ``/openai/v1`` with an API key (the only one it can reach), the
    native API with IAM credentials unless ``oci_api_mode='openai'``."""
    if value is None:
        return "openai" if has_api_key else "native"
    mode = str(value).lower()
    if mode not in API_MODES:
        raise ConfigurationError("oci_api_mode must be 'native' or 'openai'", param="oci_api_mode")
    if mode == "native" and has_api_key:
        raise ConfigurationError("a Generative AI API key reaches only OCI's OpenAI-compatible API: use oci_api_mode='openai' "
                                 "(the default with a key), or IAM credentials for the native API", param="oci_api_mode")  # fmt: skip
    return mode


class SettingsCache:
    """Memoises resolution per (settings, relevant env vars): keys are parsed once, not per call.

    An entry is used only while the files it was read from are unchanged (one ``stat`` each).
    """

    def __init__(self, maxsize: int = 64) -> None:
        self._entries: dict[tuple, tuple[Settings, tuple[tuple[int, int] | None, ...]]] = {}
        self._maxsize = maxsize
        self._lock = threading.Lock()

    def resolve(self, params: Mapping[str, Any]) -> Settings:
        env = os.environ
        try:
            signer = params.get("oci_signer")
            items = params.items() if signer is None else {**params, "oci_signer": id(signer)}.items()
            key = (frozenset(item for item in items if item[1] is not None), _env_key())
        except TypeError:
            return _resolve(params, env)
        found = self._entries.get(key)
        if found is not None:
            settings, stamps = found
            for path, stamp in zip(settings.sources, stamps):  # noqa: B905 - built together, same length
                if file_stamp(path) != stamp:
                    break
            else:
                return settings
        settings = _resolve(params, env)
        stamps = tuple(file_stamp(p) for p in settings.sources)
        with self._lock:
            self._entries.pop(key, None)
            if len(self._entries) >= self._maxsize:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = (settings, stamps)
        return settings

    def clear(self) -> None:
        """Forget every entry (after OCI answered 401: credentials may have been rotated)."""
        with self._lock:
            self._entries.clear()


def resolve_settings(params: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Resolve without caching (the caches for keys and config files still apply)."""
    return _resolve(params, os.environ if env is None else env)
