"""corolla's built-in plugins, each registered through the ``corolla.plugins`` entry points."""
