"""App factory for ``ocilm serve --workers N`` (each worker process loads the config itself)."""

from __future__ import annotations

import os

from starlette.applications import Starlette


def app_from_env() -> Starlette:
    from . import create_app, load_config

    return create_app(load_config(os.environ["OCILM_GATEWAY_CONFIG"]))
