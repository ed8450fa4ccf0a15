"""A Jupyter server extension that serves circuitsvis's JavaScript bundle from the installed package.

With it, :func:`induction_course.plotting.attention_view` renders offline in JupyterLab and Jupyter Notebook
while each view's output holds only its data: the page loads the 1.3 MB bundle once, from
``<base_url>induction-course/circuitsvis/<version>/iife.js``.

Enable it once per environment (``./run.sh`` setup does; ``jupyter server extension list`` then shows it)::

    python -m induction_course.jupyter_extension

That writes ``<sys.prefix>/etc/jupyter/jupyter_server_config.d/induction_course.json``. (``jupyter server
extension enable`` cannot do it: it only toggles extensions that a config file already names, and an
editable install does not install data files.)

This module imports nothing from Jupyter at import time, so the plotting code can read its constants cheaply.
"""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path

EXTENSION = "induction_course.jupyter_extension"


@functools.lru_cache(maxsize=None)
def circuitsvis_version() -> str:
    return importlib.metadata.version("circuitsvis")


def bundle_path() -> Path:
    """The browser bundle that ships inside the circuitsvis wheel (defines ``window.CircuitsVis``)."""
    spec = importlib.util.find_spec("circuitsvis")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("circuitsvis is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "dist" / "cdn" / "iife.js"


def bundle_route() -> str:
    """The bundle's address relative to the server's base URL; the version in it makes it cacheable."""
    return f"induction-course/circuitsvis/{circuitsvis_version()}/iife.js"


def cdn_url() -> str:
    """Where circuitsvis itself loads its ES module from when online (used on Colab)."""
    return f"https://unpkg.com/circuitsvis@{circuitsvis_version()}/dist/cdn/esm.js"


def _jupyter_server_extension_points():
    return [{"module": EXTENSION}]


def _load_jupyter_server_extension(serverapp) -> None:
    from jupyter_server.base.handlers import JupyterHandler
    from jupyter_server.utils import url_path_join
    from tornado import web

    bundle = bundle_path()

    class BundleHandler(JupyterHandler):
        auth_resource = "contents"

        @web.authenticated
        def get(self) -> None:
            self.set_header("Content-Type", "application/javascript; charset=utf-8")
            self.set_header("Cache-Control", "public, max-age=31536000, immutable")
            self.finish(bundle.read_bytes())

    base_url = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", [(url_path_join(base_url, bundle_route()), BundleHandler)])
    serverapp.log.info("induction_course: serving circuitsvis %s at %s", circuitsvis_version(),
                       url_path_join(base_url, bundle_route()))


# The names jupyter_server looks for, old and new.
load_jupyter_server_extension = _load_jupyter_server_extension


def config_file(prefix: str | Path = sys.prefix) -> Path:
    return Path(prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "induction_course.json"


def enable(prefix: str | Path = sys.prefix) -> Path:
    """Enable the extension for every Jupyter server run from ``prefix`` (idempotent)."""
    path = config_file(prefix)
    text = json.dumps({"ServerApp": {"jpserver_extensions": {EXTENSION: True}}}, indent=2) + "\n"
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path


if __name__ == "__main__":
    print(f"induction_course: circuitsvis server extension enabled in {enable()}")
