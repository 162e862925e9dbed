"""The ``pollama`` command line: a client of the server, plus ``serve``."""
