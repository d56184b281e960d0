"""Finding the real binaries backend tests run (Debian's prometheus package)."""

from __future__ import annotations

import os
import shutil

import pytest


def require(binary: str) -> str:
    """The binary's path; a skip on a developer machine without it, a failure in CI (which installs it)."""
    found = shutil.which(binary)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"{binary} is not installed; .ci/run installs Debian's prometheus package")
    pytest.skip(f"{binary} not installed (apt-get install prometheus)")
