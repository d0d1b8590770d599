"""Auth's driving side: gRPC servicer and server, HTTP front, their bodies and metrics."""
