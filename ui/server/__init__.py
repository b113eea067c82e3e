"""The server side of the UI: the public Gradio API endpoints and the request guards on launch."""
