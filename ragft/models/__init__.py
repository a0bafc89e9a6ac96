"""Model access behind small protocols: OpenAI SDK, the offline local backend."""
