"""App factory for ``ocilm serve --workers N`` (each worker process loads the config itself)."""

from __future__ import annotations

import gc
import os
import sys

from starlette.applications import Starlette


def freeze_startup_objects() -> None:
    """Objects made at start-up live as long as the process: keep the collector off them.

    Only ``ocilm serve`` does this, for the whole process it owns; ``create_app`` mounted in
    someone else's app leaves their collector alone.
    """
    gc.collect()
    gc.freeze()


def app_from_env() -> Starlette:
    from . import create_app, load_config

    hosts = os.environ.get("OCILM_GATEWAY_ALLOWED_HOSTS")
    config = load_config(os.environ["OCILM_GATEWAY_CONFIG"])
    app = create_app(config, allowed_hosts=hosts.split(",") if hosts else None, access_stream=sys.stdout.buffer,
                     workers=int(os.environ.get("OCILM_GATEWAY_WORKERS", "1")))  # fmt: skip
    freeze_startup_objects()
    return app
