"""graphgate server: settings, assembly, stores, handlers, graph engine and CLI."""
