"""Auth's domain: model and input rules, exceptions, ports, policy, and the pure rules of login
throttling, tokens and signing keys.

Imports only the standard library, crypto/JWT libraries and `rtm.shared`; nothing here does I/O.
"""
