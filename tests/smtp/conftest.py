"""Fixtures shared with the CLI black-box tests."""

from tests.cli.conftest import install  # noqa: F401 (a demo installation per backend)
