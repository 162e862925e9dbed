"""The server's side of runners: spawning them, talking to them, sizing them."""
