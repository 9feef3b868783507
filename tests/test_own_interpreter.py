"""The ``own_interpreter`` marker (tests/conftest.py): the test's body runs in a child Python process, not here."""
import os

import pytest

OWN_INTERPRETER = "RL_I2IT_OWN_INTERPRETER"  # tests/conftest.py's (tests/fixtures has a conftest too)


@pytest.mark.own_interpreter
def test_the_body_runs_in_a_child_process(request):
    assert os.environ.get(OWN_INTERPRETER) == request.node.nodeid, "the body ran in the suite's own process"
