"""pytest plugin (entry point `pytest11: pollnet`): fixtures arrive with the socket backend."""
