"""The pluggy markers of the ``corolla`` project name."""
import pluggy

PROJECT = "corolla"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
