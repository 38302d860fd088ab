"""llm-factory-server: an OpenAI-compatible gateway over llm-factory.

Run it: ``llm-factory serve`` / ``python -m llm_factory_server``. Build the app in code::

    from llm_factory_server import create_app
    app = create_app()                     # configuration found as LLMFactory does
    app = create_app(LLMFactory(configs))  # or around your factory

Mount the API into your own FastAPI app::

    from llm_factory_server import router as llm_router
    app.include_router(llm_router, prefix="/v1")
    app.state.llm_factory = factory        # optional; otherwise found by the discovery rules

Running uvicorn yourself, give it the gateway's connection limits::

    uvicorn.run(app, **uvicorn_options(gateway_for(app).settings))
"""

from ._app import create_app
from ._cli import main
from ._gateway import Gateway, gateway_for
from ._protocol import uvicorn_options
from ._routes import create_router, router
from ._serve import serve
from ._settings import ServerSettings

__version__ = "0.1.0"

__all__ = [
    "Gateway",
    "ServerSettings",
    "__version__",
    "create_app",
    "create_router",
    "gateway_for",
    "main",
    "router",
    "serve",
    "uvicorn_options",
]
