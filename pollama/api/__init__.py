"""Wire types: the JSON shapes of each API, as pydantic models. No logic lives here."""
