"""`rtm chaos`: acked messages survive crashes and freezes of every part of rtm (issue 10).

Modules: `checker` (the verdict on a history: pure).
"""
