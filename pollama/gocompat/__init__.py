"""Go behaviour Ollama clients rely on: JSON encoding, strconv quoting and parsing, durations, times, sizes."""
