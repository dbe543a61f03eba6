"""Speech to text with the bundled Whisper model."""
