"""Start the llm-factory gateway on http://localhost:8000: ``python main.py [--config config.yaml]``.

The same as ``llm-factory serve`` and ``python -m llm_factory_server`` (``--help`` lists the options).
"""

import sys

from llm_factory_server import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
