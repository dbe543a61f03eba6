"""What each MCP tool declares about its effects (MCP ``ToolAnnotations``), and the one rule
read from them: only a tool that declares itself read-only is treated as one.

The declaration sits on the tool itself (``@mcp.tool(annotations=...)``), so the read-only
scopes of HTTP clients (``mcp_servers.runtime``) and the assistant's confirmation step
(``agents.policy``, which reads the same annotations over MCP) cannot drift from a list kept
elsewhere. A tool registered without annotations, or without ``readOnlyHint=True``, counts as
a write: deny by default.
"""

from mcp.types import ToolAnnotations

# Reads change nothing: calling them again is harmless by construction.
READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True)


def write(*, destructive: bool, idempotent: bool) -> ToolAnnotations:
    """A tool that changes data. ``destructive``: it may overwrite or remove what exists (a
    moved or cancelled appointment, a revoked link), not only add. ``idempotent``: calling it
    again with the same arguments changes nothing more (MCP's meaning of both hints)."""
    return ToolAnnotations(
        readOnlyHint=False, destructiveHint=destructive, idempotentHint=idempotent
    )


def is_read_only(annotations: ToolAnnotations | None) -> bool:
    """True only for a tool that declares itself read-only; anything else may write."""
    return annotations is not None and annotations.readOnlyHint is True
