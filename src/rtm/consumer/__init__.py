"""The consumer: stores what JetStream holds, numbers it, and delivers it live and on demand.

Flow: partition workers pull from JetStream (one active worker per partition, leased in a
JetStream key-value bucket), store each batch in one PostgreSQL transaction that also assigns the
dense per-conversation `seq` and advances the partition's offset, ack, then fan the stored
messages out over core NATS to every consumer instance, which pushes them to local sockets.
"""
