"""The ``ocilm`` command: ``serve`` (gateway), ``simulate`` (OCI stand-in), ``chat`` (one prompt),
``db upgrade`` and ``keys`` (the gateway's key and budget store)."""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .gateway import GatewayConfigError, create_app, load_config
    from .gateway._factory import freeze_startup_objects
    from .gateway._responses_ws import WEBSOCKET_SERVER_OPTIONS
    from .gateway._startup import LOOPBACK_HOSTS

    try:
        config = load_config(args.config)
    except GatewayConfigError as exc:
        print(f"ocilm serve: {exc.message}", file=sys.stderr)
        return 2
    if config.master_key is None and not _is_loopback(args.host) and not args.allow_unauthenticated:
        print(
            f"ocilm serve: refusing to listen on {args.host} without general_settings.master_key; "
            "set a master key, listen on 127.0.0.1, or pass --allow-unauthenticated",
            file=sys.stderr,
        )
        return 2
    for warning in config.warnings:
        print(f"ocilm serve: warning: {warning}", file=sys.stderr)
    problem = _check_start(config, args.workers)  # before uvicorn, so the reason is one clear line
    if problem:
        print(f"ocilm serve: {problem}", file=sys.stderr)
        return 2
    print(f"ocilm gateway: {len(config.deployments)} model name(s) on http://{args.host}:{args.port}/v1", file=sys.stderr)
    common = dict(host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=30, access_log=False,
                  limit_concurrency=args.limit_concurrency, **WEBSOCKET_SERVER_OPTIONS)  # fmt: skip
    # Without a master key, answer only to the names this address is reached by (no DNS rebinding).
    allowed_hosts = ["*"] if args.allow_unauthenticated else [*LOOPBACK_HOSTS, args.host]
    if args.workers > 1:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Each worker writes its metric samples here, and a scrape of any worker reads them all.
            import atexit
            import shutil
            import tempfile

            samples = tempfile.mkdtemp(prefix="ocilm-metrics-")
            atexit.register(shutil.rmtree, samples, ignore_errors=True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = samples
        os.environ["OCILM_GATEWAY_CONFIG"] = os.path.abspath(args.config)
        os.environ["OCILM_GATEWAY_ALLOWED_HOSTS"] = ",".join(allowed_hosts)
        os.environ["OCILM_GATEWAY_WORKERS"] = str(args.workers)
        from .gateway._workers import WorkersFailed, run_workers, spread_by_kernel

        if spread_by_kernel():  # each worker on a socket of its own: the kernel spreads the connections
            try:
                run_workers(args.host, args.port, args.workers, {k: v for k, v in common.items() if k not in ("host", "port")})
            except OSError as exc:  # the address in use, or not this host's
                print(f"ocilm serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
                return 1
            except WorkersFailed as exc:
                print(f"ocilm serve: {exc}", file=sys.stderr)
                return 1
        else:
            uvicorn.run("ocilm.gateway._factory:app_from_env", factory=True, workers=args.workers, **common)
    else:
        app = create_app(config, allowed_hosts=allowed_hosts, access_stream=sys.stdout.buffer)
        freeze_startup_objects()
        uvicorn.run(app, **common)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import tempfile

    import uvicorn

    from .testing import SimulatorApp
    from .testing._server import make_credentials, write_profile

    app = SimulatorApp()
    credentials = make_credentials(app)
    directory = args.profile_dir or tempfile.mkdtemp(prefix="ocilm-simulator-")
    config_path = write_profile(credentials, directory)
    base = f"http://{args.host}:{args.port}"
    print(
        f"OCI Generative AI simulator on {base}\n"
        f"A throwaway API key for it is in the OCI config profile {config_path}. To use it:\n"
        f"  export OCI_CONFIG_FILE={config_path}\n"
        f"  export OCI_COMPARTMENT_ID={credentials['oci_compartment_id']}\n"
        f"  ocilm chat --api-base {base} -m meta.llama-3.3-70b-instruct 'Hello'\n",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="off")
    return 0


def _connection(args: argparse.Namespace) -> dict:
    """The OCI settings ``ocilm chat`` and ``ocilm models`` share."""
    from ._settings import profile_tenancy

    params: dict = {}
    if args.api_base:
        params["api_base"] = args.api_base
    if args.config_file:
        params["oci_config_file"] = args.config_file
    if args.profile:
        params["oci_profile"] = args.profile
    if args.region:
        params["oci_region"] = args.region
    compartment = args.compartment_id or os.environ.get("OCI_COMPARTMENT_ID")
    if not compartment:
        # The tenancy OCID is the root compartment: a sensible default for one-off prompts.
        compartment = profile_tenancy(params)
    if compartment:
        params["oci_compartment_id"] = compartment
    return params


def _models(args: argparse.Namespace) -> int:
    """``ocilm models``: OCI's catalogue, one model a line, with its lifecycle dates."""
    import ocilm

    try:
        models = ocilm.list_models(**_connection(args))
    except ocilm.OCIError as exc:
        print(f"ocilm models: {exc}", file=sys.stderr)
        return 1
    width = max((len(m.id) for m in models), default=10)
    for m in sorted(models, key=lambda m: m.id):
        dates = [f"{label} {str(value)[:10]}" for label, value in (("deprecated", m.time_deprecated), ("on-demand retired", m.time_on_demand_retired),
                                                                     ("dedicated retired", m.time_dedicated_retired)) if value]  # fmt: skip
        print(f"{m.id:<{width}}  {m.vendor or '-':<8} {','.join(m.capabilities):<16} {m.lifecycle_state or '-':<8} {'; '.join(dates)}".rstrip())
    return 0


def _chat(args: argparse.Namespace) -> int:
    import ocilm

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    params = _connection(args)
    if args.max_tokens:
        params["max_tokens"] = args.max_tokens
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [{"role": "user", "content": prompt}]
    try:
        if args.no_stream:
            print(ocilm.completion(args.model, messages, **params).choices[0].message.content)
            return 0
        for chunk in ocilm.completion(args.model, messages, stream=True, **params):
            if chunk.choices and chunk.choices[0].delta.content:
                sys.stdout.write(chunk.choices[0].delta.content)
                sys.stdout.flush()
        sys.stdout.write("\n")
    except ocilm.OCIError as exc:
        print(f"\nocilm chat: {exc}", file=sys.stderr)
        return 1
    return 0


def _check_start(config: Any, workers: int) -> str | None:
    """Why the gateway cannot start as configured (its store, its rate limits), or None."""
    import asyncio

    from .gateway._startup import GatewayStartError, limits_refused, open_store

    refused = limits_refused(config, workers)
    if refused and config.deployment_limits:
        return f"model_list: deployments set rpm or tpm, but {refused}"

    async def check() -> str | None:
        if config.governance is None:
            return None
        store = await open_store(config.governance)
        try:
            if refused and await store.has_rate_limits():
                return f"some keys or teams have rate limits, but {refused}"
        finally:
            await store.close()
        return None

    try:
        return asyncio.run(check())
    except GatewayStartError as exc:
        return str(exc)


def _with_store(args: argparse.Namespace, work: Callable[[Any, Any], Awaitable[int]], migrate: bool = False) -> int:
    """Run ``work(store, config)`` on the database a gateway config names."""
    import asyncio

    from .gateway import GatewayConfigError, load_config
    from .gateway._startup import GatewayStartError
    from .gateway.governance._outcomes import SchemaAhead
    from .gateway.governance._store import Store, StoreUnavailable

    try:
        config = load_config(args.config, check_credentials=False)
    except GatewayConfigError as exc:
        print(f"ocilm {args.command}: {exc.message}", file=sys.stderr)
        return 2
    if config.governance is None:
        print(f"ocilm {args.command}: {args.config} has no database: set general_settings.database_url (sqlite:///ocilm.db "
              "for a file beside the config, or postgresql://user@host/db for several replicas)", file=sys.stderr)  # fmt: skip
        return 2

    governance = config.governance

    async def run() -> int:
        store = await Store.open(governance.database_url)
        try:
            if migrate or governance.auto_migrate:
                await store.upgrade()
            return await work(store, config)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except (StoreUnavailable, GatewayStartError, SchemaAhead) as exc:
        print(f"ocilm {args.command}: {exc}", file=sys.stderr)
        return 1


def _db(args: argparse.Namespace) -> int:
    async def done(store: Any, config: Any) -> int:
        print("ocilm db: the schema is up to date")
        return 0

    return _with_store(args, done, migrate=True)


def _keys(args: argparse.Namespace) -> int:
    import json

    from .gateway._admin import KEY_FIELDS, admin_fields, key_token
    from .gateway._errors import GatewayError

    actor = f"ocilm keys ({_login()})"  # who changed what, in the audit trail like the admin API's changes

    async def work(store: Any, config: Any) -> int:
        if args.action == "create":
            body = {k: v for k, v in {"key_alias": args.alias, "team_id": args.team, "max_budget": args.max_budget,
                                      "budget_duration": args.budget_duration, "duration": args.duration,
                                      "models": args.models.split(",") if args.models else None}.items() if v is not None}  # fmt: skip
            key, info = await store.create_key(admin_fields(body, KEY_FIELDS, config), actor=actor)
            print(f"key (shown once, store it now): {key}")
            print(json.dumps(info, indent=2))
            return 0
        if args.action == "list":
            for info in await store.list_keys():
                budget = "-" if info["max_budget"] is None else f"${info['max_budget']:g}"
                print(f"{info['token']}  {info['key_name']}  alias={info['key_alias'] or '-'}  team={info['team_id'] or '-'}  "
                      f"spend=${info['spend']:.6f}  budget={budget}  {'BLOCKED' if info['blocked'] else 'active'}")  # fmt: skip
            return 0
        token = key_token(args.key)
        before = await store.key_info(token)
        if args.action == "info":
            info = before
        elif args.action in ("block", "unblock"):
            info = await store.update_key(token, {"blocked": args.action == "block"}, actor=actor, action=f"key.{args.action}")
        else:
            info = {"deleted_keys": await store.delete_keys([token], actor=actor)} if before else None
        if info is None:
            print(f"ocilm keys: no key {token!r}", file=sys.stderr)
            return 1
        print(json.dumps(info, indent=2))
        return 0

    async def guarded(store: Any, config: Any) -> int:
        try:
            return await work(store, config)
        except GatewayError as err:
            print(f"ocilm keys: {err.message}", file=sys.stderr)
            return 2
        except LookupError as exc:
            print(f"ocilm keys: {exc}", file=sys.stderr)
            return 2

    return _with_store(args, guarded)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no name
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown user"


def _audit(args: argparse.Namespace) -> int:
    """``ocilm audit verify``: walk the audit trail's hash chain; a changed, removed or reordered
    entry is named and the exit status is 1."""

    async def verify(store: Any, config: Any) -> int:
        checked, broken = await store.verify_audit()
        if broken is not None:
            print(f"ocilm audit verify: the audit trail was altered: {broken} ({checked} entries read)", file=sys.stderr)
            return 1
        print(f"ocilm audit verify: {checked} entries, the chain is whole")
        return 0

    return _with_store(args, verify)


def _connection_options(parser: argparse.ArgumentParser) -> None:
    """The OCI options ``ocilm chat`` and ``ocilm models`` share (read by ``_connection``)."""
    parser.add_argument("--api-base", help="base URL instead of the regional OCI host (e.g. the simulator's)")
    parser.add_argument("--config-file", help="OCI config file (default: OCI_CONFIG_FILE or ~/.oci/config)")
    parser.add_argument("--profile", help="config profile (default: OCI_CLI_PROFILE or DEFAULT)")
    parser.add_argument("--region")
    parser.add_argument("--compartment-id", help="default: OCI_COMPARTMENT_ID, else the profile's tenancy (root compartment)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocilm", description="OCI Generative AI with the OpenAI calling convention.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the OpenAI-compatible gateway")
    serve.add_argument("--config", required=True, help="LiteLLM-style YAML with a model_list")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--allow-unauthenticated", action="store_true", help="listen beyond loopback without a master key")
    serve.add_argument("--limit-concurrency", type=int, default=1000,
                       help="most connections served at once per worker; more get 503 (bounds memory: bodies are up to 8 MB)")  # fmt: skip
    serve.set_defaults(run=_serve)

    simulate = sub.add_parser("simulate", help="run the local OCI Generative AI simulator")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8080)
    simulate.add_argument("--profile-dir", help="where to write the throwaway OCI config profile (default: a new temp dir)")
    simulate.set_defaults(run=_simulate)

    chat = sub.add_parser("chat", help="send one prompt and stream the reply")
    chat.add_argument("prompt", help="the prompt, or - to read it from standard input")
    chat.add_argument("-m", "--model", required=True, help="e.g. meta.llama-3.3-70b-instruct or oci/xai.grok-4")
    _connection_options(chat)
    chat.add_argument("--system", help="a system prompt")
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument("--no-stream", action="store_true")
    chat.set_defaults(run=_chat)

    models = sub.add_parser("models", help="OCI's model catalogue (ListModels): names, capabilities and retirement dates")
    _connection_options(models)
    models.set_defaults(run=_models)

    db = sub.add_parser("db", help="the gateway's key and budget database")
    db.add_argument("action", choices=["upgrade"], help="apply the schema migrations (once, before replicas start)")
    db.add_argument("--config", required=True, help="the gateway's YAML (general_settings.database_url)")
    db.set_defaults(run=_db)

    audit = sub.add_parser("audit", help="the audit trail of admin changes")
    audit.add_argument("action", choices=["verify"], help="prove the hash-chained trail was not altered")
    audit.add_argument("--config", required=True, help="the gateway's YAML (general_settings.database_url)")
    audit.set_defaults(run=_audit)

    keys = sub.add_parser("keys", help="virtual keys, from the terminal (the same as the admin API)")
    keys.add_argument("action", choices=["create", "list", "info", "block", "unblock", "delete"])
    keys.add_argument("key", nargs="?", help="a key (sk-...) or its token, for info, block, unblock and delete")
    keys.add_argument("--config", required=True, help="the gateway's YAML")
    keys.add_argument("--alias")
    keys.add_argument("--team")
    keys.add_argument("--models", help="comma-separated model names the key may use (default: all)")
    keys.add_argument("--max-budget", type=float, help="USD")
    keys.add_argument("--budget-duration", help="e.g. 30d: the budget starts over every period")
    keys.add_argument("--duration", help="e.g. 90d: the key expires after this")
    keys.set_defaults(run=_keys)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
