"""gRPC stubs generated from proto/rtm/auth/v1/auth.proto by scripts/gen_proto.py. DO NOT EDIT."""
