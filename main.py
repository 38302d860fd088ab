"""Start the llm-factory gateway on http://localhost:8000: ``python main.py [--config config.yaml]``.

Same as ``llm-factory serve`` and ``python -m llm_factory_server`` (``--help`` lists the options).
"""

import sys

from llm_factory_server._cli import serve_main

if __name__ == "__main__":
    sys.exit(serve_main())
