"""Other vendors ' APIs as translations of the native one."""
