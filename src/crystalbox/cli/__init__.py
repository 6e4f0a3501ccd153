"""The ``crystalbox`` command line."""
