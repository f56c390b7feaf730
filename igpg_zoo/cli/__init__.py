"""The ``igpg-zoo`` command line: one module per command group, ``app.main`` is the entry point."""
