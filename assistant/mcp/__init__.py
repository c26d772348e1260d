"""PHT Assistant as a Model Context Protocol server, with the official ``mcp`` SDK (2.x).

One server (:func:`assistant.mcp.server.build_server`), two transports: ``pht-assistant mcp`` over
standard input and output (:mod:`assistant.mcp.stdio`), and streamable HTTP at ``/mcp`` of the HTTP
API behind a clinic's secret key (:mod:`assistant.mcp.http`). Tools: ``ask``, ``search_sources``,
``list_sources``; resource: ``pht://sources``. docs/integrations.md shows the set-up.

Importing this package loads nothing; the SDK loads with the modules below it.
"""
