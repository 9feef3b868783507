import os
import subprocess
import sys

import pytest
import torch

# the tests run on the CPU with few threads; CI's machine has 2 cores
torch.set_num_threads(min(2, os.cpu_count() or 1))

# A test marked ``own_interpreter`` runs in a fresh Python process (``python -m pytest <its node id>``) and the
# suite's process only checks that it passed. Ray's ray.shutdown() leaves gRPC threads running (gcs_client_io,
# event_engine, grpc_global_timer: seen in /proc/self/task after the Ray tests); alive at interpreter exit, they
# crashed CI's pytest process with a segmentation fault after every test had passed (exit 139). A child process
# per Ray test keeps those threads out of the suite's process, and a crash in the child fails that test, by name.
OWN_INTERPRETER = "RL_I2IT_OWN_INTERPRETER"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_pyfunc_call(pyfuncitem):
    if pyfuncitem.get_closest_marker("own_interpreter") is None or \
            os.environ.get(OWN_INTERPRETER) == pyfuncitem.nodeid:
        return None
    command = [sys.executable, "-X", "faulthandler", "-m", "pytest", "-q", "-p", "no:cacheprovider", pyfuncitem.nodeid]
    child = subprocess.run(command, cwd=pyfuncitem.config.rootpath, capture_output=True, text=True,
                           env={**os.environ, OWN_INTERPRETER: pyfuncitem.nodeid})
    if child.returncode == 0 and " skipped" in child.stdout and " passed" not in child.stdout:
        pytest.skip(f"skipped in its own interpreter: {child.stdout.strip().splitlines()[-1]}")
    if child.returncode != 0 or " passed" not in child.stdout:
        pytest.fail(f"{pyfuncitem.nodeid} in its own interpreter: exit {child.returncode}\n"
                    f"{child.stdout[-6000:]}\n{child.stderr[-3000:]}", pytrace=False)
    return True
