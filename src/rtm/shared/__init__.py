"""Shared kernel: what every rtm service agrees on.

Ids, time format, the NATS contract (subjects and event codecs), token verification, the settings
base, logging, health, metrics, errors and the HTTP app base. Services import this package and
never each other.
"""
