"""The contracts a third party implements: hooks, backends, tasks, options and errors.

Everything here is public and re-exported by the top-level :mod:`xbench` namespace.
"""
