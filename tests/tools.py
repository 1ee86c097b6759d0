"""Tests that need a program on this machine (sipp): skipped where it is missing on a
developer's machine, but in CI (the CI variable set, as .ci/run does) they run and fail,
so that a skipped test can never pass as green there."""
import os
import shutil

import pytest


def needs(tool: str, package: str):
    if shutil.which(tool) or os.environ.get("CI"):
        return pytest.mark.usefixtures()          # runs (and fails in CI if it is missing)
    return pytest.mark.skip(reason=f"{tool} ({package}) not on PATH; in CI this test fails")
