from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No real AWS configuration, credentials or metadata service can be reached by any test: the
    environment is cleared, shared files point into tmp_path and IMDS is disabled."""
    import os

    for name in list(os.environ):
        if name.startswith(("AWS_", "CLAUDE_", "ANTHROPIC_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws_config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws_credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SDK_UA_APP_ID", "llm-factory-tests")
    return tmp_path
