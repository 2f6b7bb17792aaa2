"""Media engines behind the step models: audio, video frames, OCR, transcription, speech."""
