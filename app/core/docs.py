"""The interactive API docs, served by the app itself: no CDN, and a CSP with no inline script.

FastAPI's own `/docs` and `/redoc` load Swagger UI and ReDoc from jsDelivr and start them with an
inline script, so they are blank pages without internet and need `'unsafe-inline'` scripts. Here
the bundles come from the `fastapi-offline` wheel (pinned and hashed like every dependency: the
versions are in its package metadata), the start-up code is a file of ours next to this module,
and the page hands it its settings as a JSON data block, which a browser never executes (ADR 0023).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"
_OWN_ASSETS = Path(__file__).with_name("docs_assets")

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon.png">
{stylesheet}
</head>
<body>
<div id="{element}"></div>
<script id="docs-config" type="application/json">{config}</script>
<script src="{assets}/{bundle}"></script>
<script src="{assets}/{starter}"></script>
</body>
</html>
"""


@dataclass(frozen=True)
class _Viewer:
    """One docs page: which bundle renders the contract, and our file that starts it."""

    path: str
    name: str
    element: str
    bundle: str
    starter: str
    stylesheets: tuple[str, ...] = ()


_SWAGGER_UI = _Viewer(
    DOCS_URL,
    "Swagger UI",
    "swagger-ui",
    "swagger-ui-bundle.js",
    "swagger-start.js",
    ("swagger-ui.css", "docs.css"),
)
_REDOC = _Viewer(REDOC_URL, "ReDoc", "redoc", "redoc.standalone.js", "redoc-start.js")


def _page(viewer: _Viewer, *, title: str, assets: str, config: dict[str, Any]) -> str:
    # `<` escaped so no value can close the data block (`</script>`) and become markup.
    data = json.dumps(config, separators=(",", ":")).replace("<", "\\u003c")
    stylesheets = "\n".join(
        f'<link rel="stylesheet" href="{assets}/{name}">' for name in viewer.stylesheets
    )
    return _PAGE.format(
        title=title,
        assets=assets,
        stylesheet=stylesheets,
        element=viewer.element,
        config=data,
        bundle=viewer.bundle,
        starter=viewer.starter,
    )


def _serve(
    app: FastAPI, viewer: _Viewer, settings: dict[str, Any]
) -> Callable[[Request], Awaitable[HTMLResponse]]:
    openapi_url = app.openapi_url or "/openapi.json"

    async def page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return HTMLResponse(
            _page(
                viewer,
                title=f"{app.title} — {viewer.name}",
                assets=f"{root}{ASSETS_URL}",
                config={"url": f"{root}{openapi_url}", **settings},
            )
        )

    return page


def install_docs(app: FastAPI, *, persist_authorization: bool, root_redirect: bool) -> None:
    """Serve Swagger UI at /docs and ReDoc at /redoc from packaged files; `/` may lead to them."""
    # Sign-in survives a reload (kept in the browser's localStorage): outside production.
    swagger_settings = {"persistAuthorization": persist_authorization}
    for viewer, settings in ((_SWAGGER_UI, swagger_settings), (_REDOC, {})):
        app.add_api_route(
            viewer.path, _serve(app, viewer, settings), methods=["GET"], include_in_schema=False
        )

    if root_redirect:

        @app.get("/", include_in_schema=False)
        async def root(request: Request) -> RedirectResponse:
            # A path, never a URL built from the Host header (which the client controls).
            return RedirectResponse(f"{request.scope.get('root_path', '')}{DOCS_URL}")

    # A mount, matched after the routes above. Ours first: no package file shadows one of ours.
    app.mount(
        ASSETS_URL,
        StaticFiles(directory=_OWN_ASSETS, packages=[("fastapi_offline", "static")]),
        name="docs-assets",
    )
