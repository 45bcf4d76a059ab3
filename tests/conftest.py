import pytest
import torch


@pytest.fixture(autouse=True, scope='session')
def _one_intra_op_thread():
    """The tensors in these tests are tiny: intra-op threads only cost time, and a lot of it on a busy 2-core
    machine (threads waiting for each other made small forwards 100x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
