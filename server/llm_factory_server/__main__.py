"""``python -m llm_factory_server [--config ...] [--host ...] [--port ...]``."""

import sys

from ._cli import serve_main

sys.exit(serve_main())
