"""The ``rx`` command line: commands (``main``) and rich renderings (``render``)."""
