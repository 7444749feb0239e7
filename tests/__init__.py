"""Test package. Shared helper modules that assert are rewritten like test modules, so
their failures show both sides; that must be declared before they are first imported."""

import pytest

pytest.register_assert_rewrite("tests.faults.harness")
