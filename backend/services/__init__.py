"""What the UI, the API and scripts call: validated requests in, results or streams of events out."""
