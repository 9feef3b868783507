import os

import pytest
import torch

# the tests run on the CPU with few threads; CI's machine has 2 cores
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
