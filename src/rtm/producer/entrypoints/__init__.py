"""Driving adapters of the producer: the HTTP API and the WebSocket."""
