"""Built-in attention backends; each module is an ``xbench`` plugin of its own."""
