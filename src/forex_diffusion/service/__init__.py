"""HTTP service (FastAPI): forecasts, live streams on every new bar, background jobs (SPEC §9).

``create_app(settings)`` builds the application; ``forex-diffusion serve`` runs it with uvicorn.
"""

from __future__ import annotations

from forex_diffusion.service.app import create_app
from forex_diffusion.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
