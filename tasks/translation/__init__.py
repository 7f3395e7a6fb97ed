"""``translation``: placeholder until the task lands; registers nothing yet."""

import xbench


@xbench.hookimpl
def xbench_register_tasks(register):
    """Nothing to register yet."""
