"""rtm: a distributed real-time messaging system."""
