"""The contracts a third party implements: hooks, backends, tasks, options and errors.

Every module here is public; the names plugins use most are also re-exported by the
top-level :mod:`xbench` namespace.
"""
