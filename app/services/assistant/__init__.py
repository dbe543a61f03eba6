"""The secretary assistant: conversations, memory, budget, action previews, turns."""
