"""Security and bounds: credentials, login throttle, request and upload limits, sessions, user space."""
