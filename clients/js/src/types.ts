// The SDK's names for what crosses the wire. Every one is an alias of a type generated from the
// services' own OpenAPI / AsyncAPI documents (src/generated, built by `npm run gen`), so a change
// of the protocol's schemas changes these types, and code that no longer fits stops compiling.
import type { components as AuthHttp } from "./generated/auth-http.js";
import type { components as ConsumerFrames } from "./generated/consumer-frames.js";
import type { components as ConsumerHttp } from "./generated/consumer-http.js";
import type { components as ProducerFrames } from "./generated/producer-frames.js";
import type { components as ProducerHttp } from "./generated/producer-http.js";

type Without<T, K extends keyof T> = Omit<T, K>;

/** Frames the producer's socket sends (`ack`, `read_ok`, `error`, `auth_ok`, `pong`). */
export type ProducerInbound =
  | ProducerFrames["schemas"]["AckOut"]
  | ProducerFrames["schemas"]["ReadOkFrame"]
  | ProducerFrames["schemas"]["ErrorFrame"]
  | ProducerFrames["schemas"]["AuthOkFrame"]
  | ProducerFrames["schemas"]["PongFrame"];
/** Frames the consumer's socket sends. */
export type ConsumerInbound =
  | ConsumerFrames["schemas"]["ReadyFrame"]
  | ConsumerFrames["schemas"]["MessageFrame"]
  | ConsumerFrames["schemas"]["ResumedFrame"]
  | ConsumerFrames["schemas"]["TypingFrame"]
  | ConsumerFrames["schemas"]["ReadFrame"]
  | ConsumerFrames["schemas"]["PresenceFrame"]
  | ConsumerFrames["schemas"]["ConversationFrame"]
  | ConsumerFrames["schemas"]["ErrorFrame"]
  | ConsumerFrames["schemas"]["AuthOkFrame"]
  | ConsumerFrames["schemas"]["PongFrame"];

export type SendFrame = ProducerFrames["schemas"]["SendFrame"];
export type ReadFrameOut = ProducerFrames["schemas"]["ReadFrame"];
export type TypingFrameOut = ProducerFrames["schemas"]["TypingFrame"];
/** The producer's reply to a `read` frame. */
export type ReadOkFrame = ProducerFrames["schemas"]["ReadOkFrame"];
export type ResumeFrame = ConsumerFrames["schemas"]["ResumeFrame"];
export type ErrorFrame = ConsumerFrames["schemas"]["ErrorFrame"];
export type ErrorCode = ConsumerFrames["schemas"]["ErrorCode"];

/** What `send()` resolves with: the producer's ack of a `"wait":"stored"` send, so PostgreSQL
 * holds the message and `seq` is its position in the conversation. (`seq` is optional in the
 * generated type, as an ack of a send without `wait` has none; the SDK's sends all wait.) */
export type Ack = Without<ProducerFrames["schemas"]["AckOut"], "type" | "seq"> & { seq: number };
/** A stored message, from the live stream, `resume` or history. */
export type Message = Without<ConsumerFrames["schemas"]["MessageFrame"], "type">;
export type TypingEvent = Without<ConsumerFrames["schemas"]["TypingFrame"], "type">;
export type ReadEvent = Without<ConsumerFrames["schemas"]["ReadFrame"], "type">;
export type PresenceEvent = Without<ConsumerFrames["schemas"]["PresenceFrame"], "type">;
export type ConversationEvent = Without<ConsumerFrames["schemas"]["ConversationFrame"], "type">;
export type ResumedFrame = ConsumerFrames["schemas"]["ResumedFrame"];

export type User = AuthHttp["schemas"]["UserOut"];
export type Grant = AuthHttp["schemas"]["GrantOut"];
export type Session = AuthHttp["schemas"]["SessionOut"];
/** A conversation as `GET /v1/conversations` lists it (with `read_seq`, `unread_count`...). */
export type ConversationSummary = ConsumerHttp["schemas"]["ConversationOut"];
/** A conversation as the producer creates it. */
export type Conversation = ProducerHttp["schemas"]["ConversationOut"];
export type CreateConversation = ProducerHttp["schemas"]["CreateConversationBody"];
export type MessagePage = ConsumerHttp["schemas"]["MessagePageOut"];
/** What `POST /v1/conversations/{id}/read` answers: the stored marker. */
export type ReadMark = ConsumerHttp["schemas"]["ReadMarkOut"];
