"""The producer's service layer: use cases driven by the entrypoints, over the domain's ports."""

from rtm.producer.services.conversations import ConversationService
from rtm.producer.services.membership import MembershipService
from rtm.producer.services.messages import MessageService
from rtm.producer.services.pipeline import Result, SendPipeline, internal_error
from rtm.producer.services.typing_and_reads import TypingAndReadService

__all__ = [
    "ConversationService",
    "MembershipService",
    "MessageService",
    "Result",
    "SendPipeline",
    "TypingAndReadService",
    "internal_error",
]
