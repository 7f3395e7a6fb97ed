"""Built-in tasks; each package is an ``xbench`` plugin of its own."""
