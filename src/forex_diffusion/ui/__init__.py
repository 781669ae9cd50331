"""Browser UI of the service: server-rendered pages (Jinja2) with small vanilla JS on the
service's own HTTP API, every script and style shipped in ``static/`` (works offline)."""

from __future__ import annotations

from forex_diffusion.ui.pages import PAGES, install_ui

__all__ = ["PAGES", "install_ui"]
