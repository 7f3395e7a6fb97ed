"""The ``xbench`` command line: ``xbench.cli.main`` dispatches the subcommands."""
