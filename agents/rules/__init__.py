"""The deterministic ``rules`` provider: a chat model of our own that understands common French
front-desk requests and acts through the same MCP tools, confirmation cards and memory as an
LLM (``model.RulesChatModel``)."""
