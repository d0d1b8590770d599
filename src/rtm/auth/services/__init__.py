"""Auth's service layer: the use cases both entrypoints (gRPC and HTTP) drive, over the domain's
ports. Each raises `AuthError` or `TokenError`, never a driver's error; the entrypoints map those
to their transport and count the outcomes."""

from rtm.auth.services.accounts import AccountService
from rtm.auth.services.authentication import Authenticator
from rtm.auth.services.grants import GrantIssuer
from rtm.auth.services.keyring import KeyRing
from rtm.auth.services.login import LoginService
from rtm.auth.services.sessions import SessionService

__all__ = [
    "AccountService",
    "Authenticator",
    "GrantIssuer",
    "KeyRing",
    "LoginService",
    "SessionService",
]
