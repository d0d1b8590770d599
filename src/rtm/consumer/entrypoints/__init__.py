"""Driving side of the consumer: HTTP API, WebSocket, and the partition workers' loop."""
