"""The producer's domain: model, ports, exceptions and pure rules (validation, rate limits).

Imports only the standard library and `rtm.shared`; nothing here does I/O.
"""
